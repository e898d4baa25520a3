import Foundation
import WABinary
import WAProto
import WASignal

/// A decrypted incoming message.
public struct ReceivedMessage: Sendable {
    public var id: String
    /// The conversation: the peer's user JID, the group, or (for a copy of our
    /// own message sent from another of our devices) the recipient.
    public var chat: JID
    /// The sending device.
    public var sender: JID
    public var isFromMe: Bool
    public var isGroup: Bool
    public var timestamp: Date
    /// The sender's display name from the stanza's `notify`, if any.
    public var pushName: String?
    public var content: MessageContent
    /// The full decrypted message (DeviceSentMessage already unwrapped).
    public var message: WAE2E_Message
    /// Set when the sender's identity key changed with this message (accepted).
    public var identityChange: IdentityChange?
    /// How the server addressed the sender: `lid` or `pn` (the stanza's
    /// `addressing_mode`; for 1:1 stanzas inferred from `sender`'s server).
    public var addressingMode: AddressingMode = .phoneNumber
    /// The sender's other address when the server named it: its phone-number
    /// JID for a LID-addressed stanza (`sender_pn` / `participant_pn`), or its
    /// LID for a phone-number-addressed one (`sender_lid` / `participant_lid`).
    public var senderAlt: JID?
    /// The sender's LID device, when known. The messaging feature hands messages over with
    /// `sender` (and `chat`, 1:1) by phone number where it knows the number, and the LIDs here.
    public var senderLID: JID?
    /// The 1:1 chat's LID user, when known.
    public var chatLID: JID?

    public enum AddressingMode: String, Sendable { case phoneNumber = "pn", lid }
}

/// Prints ids and JIDs only: message bodies stay out of logs.
extension ReceivedMessage: CustomStringConvertible, CustomReflectable {
    public var description: String {
        "ReceivedMessage(id: \(id), chat: \(chat), sender: \(sender), fromMe: \(isFromMe), kind: \(content.kind))"
    }

    public var customMirror: Mirror { Mirror(self, children: ["id": id, "chat": chat, "sender": sender]) }
}

/// Why an incoming message could not be read, for the event and the logs.
public struct UndecryptableMessage: Sendable {
    public var id: String
    public var chat: JID
    public var sender: JID
    public var error: WAClientError
    /// The count of the retry receipt built for it (1…), or nil when none was built.
    public var retryCount: Int?
}

/// What the receive path returns for one `<message>` stanza.
public enum ReceiveOutcome: Sendable {
    /// Decrypted; send `receipt` (a delivery receipt) to the server.
    case message(ReceivedMessage, receipt: Node)
    /// Not decryptable; send `retryReceipt` when there is one (nil once the
    /// retry bound for this id is reached). Sessions are left as they were.
    case undecryptable(UndecryptableMessage, retryReceipt: Node?)
    /// Nothing to show (a duplicate of a message already decrypted, or a
    /// stanza with no `<enc>`); send `receipt` so the server stops redelivering.
    case ignored(id: String, reason: String, receipt: Node)
}

extension ReceivedMessage: Hashable {
    public static func == (a: ReceivedMessage, b: ReceivedMessage) -> Bool {
        a.id == b.id && a.chat == b.chat && a.sender == b.sender && a.isFromMe == b.isFromMe && a.isGroup == b.isGroup
            && a.timestamp == b.timestamp && a.pushName == b.pushName && a.message == b.message
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(id)
        hasher.combine(chat)
        hasher.combine(sender)
    }
}
