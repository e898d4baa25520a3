import AMQP
import Foundation
import WABinary

/// The command kinds of `docs/amqp.md`; `schemas/commands/<rawValue>.json` describes each.
public enum CommandKind: String, Sendable, CaseIterable {
    case sendText = "send.text"
    case sendReaction = "send.reaction"
    case revoke = "message.revoke"
    case edit = "message.edit"
    case read = "message.read"
    case logout = "device.logout"
    case reconnect = "device.reconnect"

    /// Kinds that put a new WhatsApp message on the wire (and get `message.status` events).
    var sendsMessage: Bool {
        switch self {
        case .sendText, .sendReaction, .revoke, .edit: true
        case .read, .logout, .reconnect: false
        }
    }

    /// Kinds that need a connected device (and are paced).
    var needsConnection: Bool { self != .logout && self != .reconnect }
}

/// The codes a refused command carries (`x-wabridge-error-code`, result `error.code`).
public enum CommandErrorCode: String, Sendable, CaseIterable {
    case invalidJSON = "INVALID_JSON"
    case invalidContentType = "INVALID_CONTENT_TYPE"
    case missingID = "MISSING_ID"
    case unknownKind = "UNKNOWN_KIND"
    case schemaViolation = "SCHEMA_VIOLATION"
    case invalidJID = "INVALID_JID"
    case deviceNotFound = "DEVICE_NOT_FOUND"
    case deviceIDRequired = "DEVICE_ID_REQUIRED"
    case deviceNotConnected = "DEVICE_NOT_CONNECTED"
    case sendFailed = "SEND_FAILED"
}

/// Why a command is refused, with what is known of it (for the reply and the event).
public struct CommandRefusal: Error, Sendable, Equatable {
    public var code: CommandErrorCode
    /// Safe to show: names fields and rules, never the command's content.
    public var message: String
    public var commandID: String?
    public var kind: String?

    public init(_ code: CommandErrorCode, _ message: String, commandID: String? = nil, kind: String? = nil) {
        self.code = code
        self.message = message
        self.commandID = commandID
        self.kind = kind
    }
}

/// What a validated command asks for, recipients already resolved to JIDs.
enum CommandAction: Sendable, Equatable {
    case sendText(to: JID, text: String, replyTo: QuotedRef?, mentions: [JID])
    case react(chat: JID, messageID: String, sender: JID?, fromMe: Bool, emoji: String)
    case revoke(chat: JID, messageID: String)
    case edit(chat: JID, messageID: String, text: String)
    case read(chat: JID, messageIDs: [String], sender: JID?)
    case logout
    case reconnect

    struct QuotedRef: Sendable, Equatable {
        var id: String
        var sender: JID
    }

    /// The chat a message goes to (events' `chat`).
    var chat: JID? {
        switch self {
        case .sendText(let to, _, _, _): to
        case .react(let chat, _, _, _, _), .revoke(let chat, _), .edit(let chat, _, _), .read(let chat, _, _): chat
        case .logout, .reconnect: nil
        }
    }
}

/// A command that passed parsing and validation.
struct ParsedCommand: Sendable, Equatable {
    /// The idempotency key (`id`, else the AMQP `message_id`).
    var id: String
    var kind: CommandKind
    var action: CommandAction
    /// Copied to the result and events: the AMQP `correlation_id`, else the command id.
    var correlationID: String
    /// Where the result goes (AMQP `reply_to`), if anywhere.
    var replyTo: String?
}

/// Turns a delivery's body and properties into a `ParsedCommand` or a
/// refusal, checking in the documented order: content type, JSON, id, kind,
/// schema, recipients.
enum CommandParser {
    /// The compiled schemas, by kind (from the embedded copies of `schemas/commands/`).
    static let validators: [CommandKind: JSONSchemaValidator] = {
        var out: [CommandKind: JSONSchemaValidator] = [:]
        for kind in CommandKind.allCases {
            guard let text = EmbeddedSchemas.commands[kind.rawValue], let v = JSONSchemaValidator(text: text) else {
                preconditionFailure("embedded schema for \(kind.rawValue) missing or not JSON: run scripts/gen-schemas.sh")
            }
            out[kind] = v
        }
        return out
    }()

    static func parse(body: [UInt8], properties: AMQPProperties) -> Result<ParsedCommand, CommandRefusal> {
        if let ct = properties.contentType {
            let media = ct.split(separator: ";", maxSplits: 1).first.map {
                $0.trimmingCharacters(in: .whitespaces).lowercased()
            } ?? ""
            guard media == "application/json" else {
                return .failure(CommandRefusal(.invalidContentType, "content type must be application/json"))
            }
        }
        guard String(bytes: body, encoding: .utf8) != nil, case .object(let o)? = JSONValue.parse(Data(body)) else {
            return .failure(CommandRefusal(.invalidJSON, "the body is not a JSON object in UTF-8"))
        }
        let messageID = properties.messageID.flatMap { $0.isEmpty ? nil : $0 }
        guard o["id"] != nil || messageID != nil else {
            return .failure(CommandRefusal(.missingID, "the command has neither id nor an AMQP message_id",
                                           kind: o["kind"]?.stringValue))
        }
        let commandID = o["id"]?.stringValue ?? (o["id"] == nil ? messageID : nil)
        guard let kindText = o["kind"]?.stringValue, let kind = CommandKind(rawValue: kindText) else {
            return .failure(CommandRefusal(.unknownKind, "kind is absent or not one of the documented kinds",
                                           commandID: commandID, kind: o["kind"]?.stringValue))
        }
        func refuse(_ code: CommandErrorCode, _ message: String) -> Result<ParsedCommand, CommandRefusal> {
            .failure(CommandRefusal(code, message, commandID: commandID, kind: kind.rawValue))
        }
        let violations = validators[kind]!.validate(.object(o))
        if !violations.isEmpty {
            let shown = violations.prefix(3).map(\.description).joined(separator: "; ")
            return refuse(.schemaViolation, "schema \(kind.rawValue): \(shown)")
        }
        guard let id = commandID, (1...128).contains(id.unicodeScalars.count) else {
            return refuse(.schemaViolation, "message_id used as command id must be 1–128 characters")
        }
        let action: CommandAction
        do {
            action = try makeAction(kind, o)
        } catch {
            return refuse(.invalidJID, "\(error.field) is neither a JID nor a phone number in international format")
        }
        return .success(ParsedCommand(
            id: id, kind: kind, action: action,
            correlationID: properties.correlationID.flatMap { $0.isEmpty ? nil : $0 } ?? id,
            replyTo: properties.replyTo.flatMap { $0.isEmpty ? nil : $0 }))
    }

    struct BadRecipient: Error { var field: String }

    /// Builds the action from a schema-valid object (types are already checked).
    private static func makeAction(_ kind: CommandKind, _ o: [String: JSONValue]) throws(BadRecipient) -> CommandAction {
        func jid(_ field: String) throws(BadRecipient) -> JID {
            guard let text = o[field]?.stringValue, let j = Recipient.parse(text) else { throw BadRecipient(field: field) }
            return j
        }
        func optionalJID(_ field: String) throws(BadRecipient) -> JID? {
            o[field] == nil ? nil : try jid(field)
        }
        let str = { (k: String) in o[k]?.stringValue ?? "" }
        switch kind {
        case .sendText:
            var quoted: CommandAction.QuotedRef?
            if let r = o["reply_to"]?.objectValue {
                guard let s = r["sender"]?.stringValue, let sender = Recipient.parse(s) else {
                    throw BadRecipient(field: "reply_to.sender")
                }
                quoted = .init(id: r["id"]?.stringValue ?? "", sender: sender)
            }
            var mentions: [JID] = []
            for (i, m) in (o["mentions"]?.arrayValue ?? []).enumerated() {
                guard let s = m.stringValue, let j = Recipient.parse(s) else { throw BadRecipient(field: "mentions[\(i)]") }
                mentions.append(j)
            }
            return .sendText(to: try jid("to"), text: str("text"), replyTo: quoted, mentions: mentions)
        case .sendReaction:
            return .react(chat: try jid("chat"), messageID: str("message_id"), sender: try optionalJID("sender"),
                          fromMe: o["from_me"]?.boolValue ?? false, emoji: str("emoji"))
        case .revoke:
            return .revoke(chat: try jid("chat"), messageID: str("message_id"))
        case .edit:
            return .edit(chat: try jid("chat"), messageID: str("message_id"), text: str("text"))
        case .read:
            return .read(chat: try jid("chat"), messageIDs: (o["message_ids"]?.arrayValue ?? []).compactMap(\.stringValue),
                         sender: try optionalJID("sender"))
        case .logout: return .logout
        case .reconnect: return .reconnect
        }
    }
}

/// Recipient text → JID: a user (`…@s.whatsapp.net`), group (`…@g.us`) or LID
/// (`…@lid`) JID, or a phone number in international format (`+` then 7–15
/// digits, no leading zero) which becomes a user JID.
enum Recipient {
    static func parse(_ text: String) -> JID? {
        if text.hasPrefix("+") {
            let digits = text.dropFirst()
            guard (7...15).contains(digits.count), digits.allSatisfy({ $0.isASCII && $0.isNumber }),
                  digits.first != "0" else { return nil }
            return JID(user: String(digits), server: JID.userServer)
        }
        guard let j = try? JID(parsing: text), !j.user.isEmpty,
              [JID.userServer, JID.groupServer, JID.lidServer].contains(j.server) else { return nil }
        return j
    }
}
