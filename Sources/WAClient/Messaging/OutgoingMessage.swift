import Foundation
import WABinary
import WASignal

/// A `<message>` stanza ready to send, with what the caller needs to track it.
public struct OutgoingMessage: Sendable {
    /// The stanza to write to the socket.
    public var node: Node
    public var id: String
    /// Our participant hash; compare with the server ack's `phash` (`ServerAck.phash`).
    public var phash: String
    /// Devices that got an `<enc>` in `<participants>`.
    public var encryptedFor: [JID]
    /// Devices left out because Signal could not encrypt for them (no session
    /// and no bundle, untrusted identity…), with the reason. The send goes on
    /// for the others, as whatsmeow does.
    public var skipped: [JID: WAClientError]
    /// True when a `pkmsg` (session-opening message) is in the stanza; it then
    /// carries `<device-identity>`.
    public var hasPreKeyMessage: Bool
    /// Peers whose identity key changed (new bundle under a new identity); accepted, report them.
    public var identityChanges: [IdentityChange] = []
}
