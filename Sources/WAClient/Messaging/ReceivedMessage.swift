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
public struct UndecryptableMessage: Sendable, Hashable {
    public var id: String
    public var chat: JID
    public var sender: JID
    public var error: WAClientError
    /// The count of the retry receipt built for it (1…), or nil when none was built.
    public var retryCount: Int?
    /// The stable reason (`BAD_MAC`, `NO_SESSION`, …) for subscribers.
    public var reason: UndecryptableReason
    /// `<unavailable type>` when the server had no ciphertext for us (`view_once`, …; "" when unnamed).
    public var unavailableType: String?
    /// Our phone was asked to resend it (placeholder resend): at once for `<unavailable>`, or after
    /// `phoneResendDelay` unless the sender's retry arrives first.
    public var phoneResendRequested = false
    /// The delay before our phone is asked (after a failed decrypt and our first retry receipt);
    /// nil when it was asked at once or not at all.
    public var phoneResendDelay: Duration?
    public var isGroup: Bool { chat.server == JID.groupServer || chat.server == JID.broadcastServer }
    /// Whether the sender (or our phone) was asked for the message again: it may still arrive.
    public var retryRequested: Bool { retryCount != nil || phoneResendRequested }

    public init(id: String, chat: JID, sender: JID, error: WAClientError, retryCount: Int?,
                reason: UndecryptableReason? = nil, unavailableType: String? = nil) {
        self.id = id
        self.chat = chat
        self.sender = sender
        self.error = error
        self.retryCount = retryCount
        self.reason = reason ?? UndecryptableReason(error)
        self.unavailableType = unavailableType
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.id == b.id && a.chat == b.chat && a.sender == b.sender && a.error.code == b.error.code
            && a.retryCount == b.retryCount && a.reason == b.reason && a.unavailableType == b.unavailableType
            && a.phoneResendRequested == b.phoneResendRequested
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(id)
        hasher.combine(reason)
    }
}

/// Why a message could not be read, as the `message.undecryptable` event names it: stable codes
/// (whatsmeow reports the Signal error and `IsUnavailable`; these name the same cases).
public enum UndecryptableReason: String, Sendable, Hashable, CaseIterable {
    /// A `msg` from a device we hold no session with.
    case noSession = "NO_SESSION"
    /// The ciphertext's MAC does not verify (tampered, or a session out of step).
    case badMAC = "BAD_MAC"
    /// A group message from a sender whose sender key we do not have.
    case noSenderKey = "NO_SENDER_KEY"
    /// A companion's `<device-identity>` does not verify: no session with it is opened.
    case invalidDeviceIdentity = "INVALID_DEVICE_IDENTITY"
    /// More `<enc>` children than a stanza may carry (`MessageReceiver.maxEncPerMessage`).
    case tooManyEnc = "TOO_MANY_ENC"
    /// Our key store failed while decrypting.
    case storeError = "STORE_ERROR"
    /// A pkmsg names a prekey we do not have (used, or never uploaded).
    case unknownPreKey = "UNKNOWN_PREKEY"
    /// The sender's identity is not the one we trust, and it was not a new session.
    case untrustedIdentity = "UNTRUSTED_IDENTITY"
    /// The Signal message is malformed (version, keys, signature, counter too far ahead).
    case invalidMessage = "INVALID_MESSAGE"
    /// Decrypted, but the plaintext does not unpad or parse as a Message.
    case invalidPayload = "INVALID_PAYLOAD"
    /// The stanza lacks a required part (sender, participant, ciphertext).
    case malformedStanza = "MALFORMED_STANZA"
    /// The server had no ciphertext for us (`<unavailable>`): our phone is asked for it.
    case unavailable = "UNAVAILABLE"
    /// Any other decryption failure.
    case decryptFailed = "DECRYPT_FAILED"

    /// The reason of a receive-path error (a Signal error, or a client error of the receive path).
    public init(_ error: any Error) {
        if let signal = error as? SignalError {
            switch signal.code {
            case .noSession: self = .noSession
            case .invalidMAC: self = .badMAC
            case .noSenderKey: self = .noSenderKey
            case .untrustedIdentity: self = .untrustedIdentity
            case .invalidKeyID: self = .unknownPreKey
            case .corruptRecord: self = .storeError
            case .invalidVersion, .invalidMessage, .invalidKey, .invalidSignature, .tooFarInFuture: self = .invalidMessage
            default: self = .decryptFailed
            }
            return
        }
        guard let client = error as? WAClientError else {
            // Neither Signal nor the receive path: the store under them.
            self = .storeError
            return
        }
        switch client.code {
        case .deviceIdentityInvalid: self = .invalidDeviceIdentity
        case .limitExceeded: self = .tooManyEnc
        case .store: self = .storeError
        case .payloadInvalid: self = .invalidPayload
        case .stanzaMalformed: self = .malformedStanza
        default:
            // `WAClientError.signal` keeps Signal's code in its text only.
            let text = client.message
            if text.hasSuffix(SignalError.Code.invalidMAC.rawValue) { self = .badMAC }
            else if text.hasSuffix(SignalError.Code.noSession.rawValue) { self = .noSession }
            else if text.hasSuffix(SignalError.Code.noSenderKey.rawValue) { self = .noSenderKey }
            else if text.hasSuffix(SignalError.Code.untrustedIdentity.rawValue) { self = .untrustedIdentity }
            else if text.hasSuffix(SignalError.Code.invalidKeyID.rawValue) { self = .unknownPreKey }
            else if text.hasSuffix(SignalError.Code.corruptRecord.rawValue) { self = .storeError }
            else { self = .decryptFailed }
        }
    }
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
