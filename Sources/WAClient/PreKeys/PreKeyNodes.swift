import Foundation
import WABinary
import WACrypto
import WASignal

/// The `xmlns=encrypt` stanzas, both directions: the client builds the
/// upload, count and bundle queries and parses their answers; a server (the
/// simulator) parses the same queries and builds the answers. Pure: no I/O,
/// no store access; IQ ids come from the caller.
///
/// Binary forms: registration id 4 bytes big-endian, `<type>` one byte 0x05,
/// key ids 3 bytes big-endian, public keys raw 32 bytes, signatures 64 bytes.
///
/// ```
/// upload: <iq id type=set xmlns=encrypt to=s.whatsapp.net>
///           <registration/><type/><identity/>
///           <list><key><id/><value/></key>…</list>
///           <skey><id/><value/><signature/></skey></iq>
/// count:  <iq id type=get xmlns=encrypt to=…><count/></iq> → <count value=N/>
/// fetch:  <iq id type=get xmlns=encrypt to=…><key><user jid/>…</key></iq>
///      →  <list><user jid><registration/><type/><identity/>
///           <skey>…</skey>[<key><id/><value/></key>]</user>…</list>
///         (a user may instead carry <error code text/>)
/// ```
public enum PreKeyNodes {
    /// Most one-time prekeys in one upload (whatsmeow uploads 812 at first, 50 later).
    public static let maxUploadCount = 1_000
    /// Most devices asked for in one bundle query (and users read from an answer).
    public static let maxBundleDevices = 512
    static let keyType: UInt8 = 0x05
    /// One-time prekeys uploaded right after the first login (whatsmeow, and real clients seen: 812).
    public static let initialUploadCount = 812
    /// One-time prekeys uploaded when the server runs low.
    public static let refillUploadCount = 50
    /// Upload more when the server holds fewer than this many.
    public static let minimumServerCount = 5

    // MARK: Upload (client builds, server parses)

    public static func uploadIQ(
        id: String, registrationID: UInt32, identity: Curve25519PublicKey,
        signedPreKey: SignedPreKeyRecord, preKeys: [PreKeyRecord]
    ) throws -> Node {
        guard preKeys.count <= maxUploadCount else {
            throw WAClientError(.limitExceeded, "prekey upload of \(preKeys.count) keys, bound \(maxUploadCount)")
        }
        let keys = preKeys.map { key in
            Node("key", children: [
                .binary("id", BigEndianBytes.encode(key.id, width: 3)),
                .binary("value", key.keyPair.publicKey.rawRepresentation),
            ])
        }
        return iq(id: id, type: "set", children: [
            .binary("registration", BigEndianBytes.encode(registrationID, width: 4)),
            .binary("type", [keyType]),
            .binary("identity", identity.rawRepresentation),
            Node("list", children: keys),
            skeyNode(id: signedPreKey.id, key: signedPreKey.keyPair.publicKey, signature: signedPreKey.signature),
        ])
    }

    /// What a device published: the server keeps it and hands out bundles from it.
    public struct Upload: Sendable {
        public var registrationID: UInt32
        public var identity: Curve25519PublicKey
        public var signedPreKeyID: UInt32
        public var signedPreKey: Curve25519PublicKey
        public var signedPreKeySignature: Data
        public var preKeys: [(id: UInt32, key: Curve25519PublicKey)]

        /// A bundle for `deviceID` using the given one-time prekey (or none).
        public func bundle(deviceID: UInt32, preKey: (id: UInt32, key: Curve25519PublicKey)?) -> PreKeyBundle {
            PreKeyBundle(
                registrationID: registrationID, deviceID: deviceID, preKeyID: preKey?.id, preKey: preKey?.key,
                signedPreKeyID: signedPreKeyID, signedPreKey: signedPreKey,
                signedPreKeySignature: signedPreKeySignature, identityKey: identity)
        }
    }

    public static func parseUpload(_ iq: Node) throws -> Upload {
        let ctx = "prekey upload"
        guard iq.string("xmlns") == "encrypt", iq.string("type") == "set" else {
            throw WAClientError(.stanzaMalformed, "\(ctx): not an encrypt set iq")
        }
        let type = try iq.requiredBytes("type", count: 1, in: ctx)
        guard type.first == keyType else { throw WAClientError(.stanzaMalformed, "\(ctx): key type is not 0x05") }
        let list = try iq.required("list", in: ctx).children("key")
        guard list.count <= maxUploadCount else {
            throw WAClientError(.limitExceeded, "\(ctx): \(list.count) keys, bound \(maxUploadCount)")
        }
        let skey = try parseSignedKey(try iq.required("skey", in: ctx), in: ctx)
        return Upload(
            registrationID: BigEndianBytes.decode(try iq.requiredBytes("registration", count: 4, in: ctx)),
            identity: try rawKey(try iq.requiredBytes("identity", count: 32, in: ctx), in: ctx),
            signedPreKeyID: skey.id, signedPreKey: skey.key, signedPreKeySignature: skey.signature,
            preKeys: try list.map { try parseKey($0, in: ctx) })
    }

    // MARK: Count

    public static func countIQ(id: String) -> Node {
        iq(id: id, type: "get", children: [Node("count")])
    }

    /// Reads `<count value=N/>` from the answer.
    public static func parseCount(_ answer: Node) throws -> Int {
        try checkResult(answer, "prekey count")
        guard let value = answer.child("count")?.int("value"), value >= 0 else {
            throw WAClientError(.stanzaMalformed, "prekey count: <count value> missing or negative")
        }
        return value
    }

    /// The count in a server's `<notification type=encrypt from=s.whatsapp.net><count value=N/>`
    /// (it is running low), or nil for another notification.
    public static func lowPreKeyCount(in notification: Node) -> Int? {
        guard notification.tag == "notification", notification.string("type") == "encrypt",
              notification.jid("from") == JID.serverJID else { return nil }
        return notification.child("count")?.int("value")
    }

    /// Server side: the answer to a count query.
    public static func countAnswer(to query: Node, count: Int) -> Node {
        result(to: query, children: [Node("count", attributes: ["value": .string(String(count))])])
    }

    // MARK: Bundles

    /// `reason` is `identity` when asking again after an identity change (whatsmeow's retry path).
    public static func bundleQueryIQ(id: String, devices: [JID], reason: String? = nil) throws -> Node {
        guard !devices.isEmpty, devices.count <= maxBundleDevices else {
            throw WAClientError(.limitExceeded, "bundle query for \(devices.count) devices, 1…\(maxBundleDevices) allowed")
        }
        let users = devices.map { jid -> Node in
            var node = Node("user", attributes: ["jid": .jid(jid)])
            if let reason { node["reason"] = .string(reason) }
            return node
        }
        return iq(id: id, type: "get", children: [Node("key", children: users)])
    }

    /// Server side: the device JIDs asked for.
    public static func parseBundleQuery(_ iq: Node) throws -> [JID] {
        let users = try iq.required("key", in: "bundle query").children("user")
        guard users.count <= maxBundleDevices else {
            throw WAClientError(.limitExceeded, "bundle query for \(users.count) devices, bound \(maxBundleDevices)")
        }
        return try users.map { try $0.requiredJID("jid", in: "bundle query") }
    }

    /// Server side: `<list>` with a bundle per device, or `<error code=404>` where there is none.
    public static func bundleAnswer(to query: Node, bundles: [(JID, PreKeyBundle?)]) -> Node {
        let users = bundles.map { jid, bundle -> Node in
            guard let bundle else {
                return Node("user", attributes: ["jid": .jid(jid)], children: [
                    Node("error", attributes: ["code": "404", "text": "item-not-found"]),
                ])
            }
            var children: [Node] = [
                .binary("registration", BigEndianBytes.encode(bundle.registrationID, width: 4)),
                .binary("type", [keyType]),
                .binary("identity", bundle.identityKey.rawRepresentation),
                skeyNode(id: bundle.signedPreKeyID, key: bundle.signedPreKey, signature: bundle.signedPreKeySignature),
            ]
            if let id = bundle.preKeyID, let key = bundle.preKey {
                children.append(Node("key", children: [
                    .binary("id", BigEndianBytes.encode(id, width: 3)), .binary("value", key.rawRepresentation),
                ]))
            }
            return Node("user", attributes: ["jid": .jid(jid)], children: children)
        }
        return result(to: query, children: [Node("list", children: users)])
    }

    /// Client side: a bundle or a typed error per device JID of the answer.
    public static func parseBundles(_ answer: Node) throws -> [JID: Result<PreKeyBundle, WAClientError>] {
        try checkResult(answer, "prekey bundles")
        let users = try answer.required("list", in: "prekey bundles").children("user")
        guard users.count <= maxBundleDevices else {
            throw WAClientError(.limitExceeded, "prekey bundles: \(users.count) users, bound \(maxBundleDevices)")
        }
        var out: [JID: Result<PreKeyBundle, WAClientError>] = [:]
        for user in users {
            let jid = try user.requiredJID("jid", in: "prekey bundles")
            out[jid] = Result { try parseBundle(user, jid: jid) }.mapError { error in
                (error as? WAClientError) ?? WAClientError(.bundleIncomplete, "\(jid): \(error)")
            }
        }
        return out
    }

    /// `registrationID` given: the node carries none (a retry receipt's `<keys>`).
    static func parseBundle(_ user: Node, jid: JID, registrationID: UInt32? = nil) throws -> PreKeyBundle {
        if let error = user.child("error") {
            throw WAClientError(.serverError, "bundle for \(jid): error \(error.string("code") ?? "?") \(error.string("text") ?? "")")
        }
        let ctx = "bundle for \(jid)"
        func part(_ tag: String, _ count: Int) throws -> Data {
            do { return try user.requiredBytes(tag, count: count, in: ctx) } catch let error as WAClientError {
                throw WAClientError(.bundleIncomplete, error.message)
            }
        }
        let registration = try registrationID ?? BigEndianBytes.decode(try part("registration", 4))
        let identity = try rawKey(try part("identity", 32), in: ctx)
        guard let skeyNode = user.child("skey") else { throw WAClientError(.bundleIncomplete, "\(ctx): <skey> missing") }
        let skey: (id: UInt32, key: Curve25519PublicKey, signature: Data)
        do { skey = try parseSignedKey(skeyNode, in: ctx) } catch let error as WAClientError {
            throw WAClientError(.bundleIncomplete, error.message)
        }
        let preKey = try user.child("key").map { try parseKey($0, in: ctx) }
        return PreKeyBundle(
            registrationID: registration, deviceID: UInt32(jid.device), preKeyID: preKey?.id, preKey: preKey?.key,
            signedPreKeyID: skey.id, signedPreKey: skey.key, signedPreKeySignature: skey.signature, identityKey: identity)
    }

    // MARK: Shared pieces

    static func skeyNode(id: UInt32, key: Curve25519PublicKey, signature: Data) -> Node {
        Node("skey", children: [
            .binary("id", BigEndianBytes.encode(id, width: 3)),
            .binary("value", key.rawRepresentation),
            .binary("signature", signature),
        ])
    }

    static func parseKey(_ node: Node, in ctx: String) throws -> (id: UInt32, key: Curve25519PublicKey) {
        (BigEndianBytes.decode(try node.requiredBytes("id", count: 3, in: ctx)),
         try rawKey(try node.requiredBytes("value", count: 32, in: ctx), in: ctx))
    }

    static func parseSignedKey(_ node: Node, in ctx: String) throws -> (id: UInt32, key: Curve25519PublicKey, signature: Data) {
        let key = try parseKey(node, in: ctx)
        return (key.id, key.key, try node.requiredBytes("signature", count: 64, in: ctx))
    }

    static func rawKey(_ bytes: Data, in ctx: String) throws -> Curve25519PublicKey {
        do { return try Curve25519PublicKey(rawRepresentation: bytes) } catch {
            throw WAClientError(.stanzaMalformed, "\(ctx): public key is not 32 bytes")
        }
    }

    static func iq(id: String, type: String, children: [Node]) -> Node {
        IQStanza.request(id: id, type: type, xmlns: "encrypt", children: children)
    }

    static func result(to query: Node, children: [Node]) -> Node { IQStanza.result(to: query, children: children) }

    static func checkResult(_ answer: Node, _ ctx: String) throws { try IQStanza.checkResult(answer, ctx) }
}
