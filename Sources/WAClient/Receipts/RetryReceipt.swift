import Foundation
import WABinary
import WACrypto
import WASignal

/// Retry receipts, both ways.
///
/// We send one when an incoming `<enc>` does not decrypt:
/// ```
/// <receipt id to=<message from> [participant] [recipient] type=retry>
///   <retry count=N id t v=1/>
///   <registration>4 bytes BE</registration>
///   [<keys><type>05</type><identity/><key><id/><value/></key><skey>…</skey>
///          <device-identity/></keys>]   (from the second retry on)
/// </receipt>
/// ```
/// and parse one from a peer (`parse`) so `MessageSender.resend` can
/// re-encrypt the original for that device, opening a new session from the
/// bundle in `<keys>` when there is one.
public struct RetryReceipt: Sendable {
    public var messageID: String
    /// `from` of the receipt: the retrying device, or the group.
    public var from: JID
    /// The retrying device in a group (`participant`).
    public var participant: JID?
    public var recipient: JID?
    public var count: Int
    public var timestamp: String?
    public var registrationID: UInt32
    /// A fresh bundle of the retrying device when it sent `<keys>`.
    public var bundle: PreKeyBundle?

    /// The device that asked.
    public var device: JID { participant ?? from }

    /// From the second retry on without `<keys>`, our session with that
    /// device is suspect: fetch its bundle and pass it to `resend` (whatsmeow does so).
    public var wantsFreshBundle: Bool { bundle == nil && count >= 2 }

    /// Our keys attached from the second retry on, so the sender can open a new session.
    public struct Keys: Sendable {
        public var identity: Curve25519PublicKey
        public var preKey: PreKeyRecord
        public var signedPreKey: SignedPreKeyRecord
        public var deviceIdentity: Data

        public init(identity: Curve25519PublicKey, preKey: PreKeyRecord, signedPreKey: SignedPreKeyRecord, deviceIdentity: Data) {
            self.identity = identity
            self.preKey = preKey
            self.signedPreKey = signedPreKey
            self.deviceIdentity = deviceIdentity
        }
    }

    /// Builds our retry receipt for the `<message>` stanza `message`.
    public static func build(for message: Node, count: Int, registrationID: UInt32, keys: Keys? = nil) -> Node {
        let id = message.string("id") ?? ""
        var node = Node("receipt", attributes: ["id": .string(id), "type": "retry"])
        if let from = message["from"] { node["to"] = from }
        if let participant = message["participant"] { node["participant"] = participant }
        if let recipient = message["recipient"] { node["recipient"] = recipient }
        var children = [
            Node("retry", attributes: [
                "count": .string(String(count)), "id": .string(id), "t": .string(message.string("t") ?? "0"), "v": "1",
            ]),
            Node.binary("registration", BigEndianBytes.encode(registrationID, width: 4)),
        ]
        if let keys {
            children.append(Node("keys", children: [
                .binary("type", [PreKeyNodes.keyType]),
                .binary("identity", keys.identity.rawRepresentation),
                Node("key", children: [
                    .binary("id", BigEndianBytes.encode(keys.preKey.id, width: 3)),
                    .binary("value", keys.preKey.keyPair.publicKey.rawRepresentation),
                ]),
                PreKeyNodes.skeyNode(id: keys.signedPreKey.id, key: keys.signedPreKey.keyPair.publicKey,
                                     signature: keys.signedPreKey.signature),
                .binary("device-identity", keys.deviceIdentity),
            ]))
        }
        node.content = .nodes(children)
        return node
    }

    /// Parses a peer's `<receipt type=retry>`.
    public init(parsing node: Node) throws {
        let ctx = "retry receipt"
        guard node.tag == "receipt", node.string("type") == "retry" else {
            throw WAClientError(.stanzaMalformed, "\(ctx): not a retry receipt")
        }
        messageID = try node.requiredString("id", in: ctx)
        from = try node.requiredJID("from", in: ctx)
        participant = node.jid("participant")
        recipient = node.jid("recipient")
        let retry = try node.required("retry", in: ctx)
        guard let count = retry.int("count"), count > 0 else { throw WAClientError(.stanzaMalformed, "\(ctx): bad count") }
        self.count = count
        timestamp = retry.string("t")
        registrationID = BigEndianBytes.decode(try node.requiredBytes("registration", count: 4, in: ctx))
        let device = participant ?? from
        if let keys = node.child("keys") {
            bundle = try PreKeyNodes.parseBundle(keys, jid: device, registrationID: registrationID)
        } else {
            bundle = nil
        }
    }
}
