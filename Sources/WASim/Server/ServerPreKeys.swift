import Foundation
import WABinary
import WACrypto
import WASignal

/// The server's side of `xmlns=encrypt`: it parses a device's prekey upload
/// and bundle queries and builds the bundle answers, with its own parser so a
/// client bug in `PreKeyNodes` (the client's builder) cannot pass unnoticed.
///
/// Rule (as the real server): an upload whose signed prekey signature does not
/// verify (XEdDSA over the 33-byte `0x05`-prefixed public key, with the
/// device's identity key) is refused with `<error code=406 text=not-acceptable>`;
/// nothing of it is kept. Malformed uploads get `400 bad-request`.
enum ServerPreKeys {
    /// Most one-time prekeys taken in one upload (whatsmeow uploads 812 at first, 50 later).
    static let maxUploadCount = 1_000
    /// Most devices answered in one bundle query.
    static let maxBundleDevices = 512
    static let keyType: UInt8 = 0x05

    /// Why the server refuses an `encrypt` iq: the `<error code text>` it answers with.
    struct Refusal: Error, Sendable, Equatable {
        let code: Int
        let text: String
        let reason: String

        static func badRequest(_ reason: String) -> Refusal { Refusal(code: 400, text: "bad-request", reason: reason) }
        static func notAcceptable(_ reason: String) -> Refusal { Refusal(code: 406, text: "not-acceptable", reason: reason) }
        static func notFound(_ reason: String) -> Refusal { Refusal(code: 404, text: "item-not-found", reason: reason) }
    }

    /// What a device published.
    struct Upload: Sendable {
        var registrationID: UInt32
        var identity: Data
        var preKeys: [(id: UInt32, key: Data)]
        var signedPreKey: (id: UInt32, key: Data, signature: Data)
    }

    /// `<iq xmlns=encrypt type=set><registration/><type/><identity/><list><key><id/><value/></key>…</list>
    /// <skey><id/><value/><signature/></skey></iq>`: every part present and of its size.
    static func parseUpload(_ iq: Node) throws(Refusal) -> Upload {
        let type = try bytes(iq, "type", count: 1)
        guard type.first == keyType else { throw .badRequest("key type is not 0x05") }
        guard let list = iq.child("list") else { throw .badRequest("<list> missing") }
        let keys = list.children("key")
        guard keys.count <= maxUploadCount else { throw .badRequest("\(keys.count) prekeys, bound \(maxUploadCount)") }
        guard let skey = iq.child("skey") else { throw .badRequest("<skey> missing") }
        var preKeys: [(id: UInt32, key: Data)] = []
        preKeys.reserveCapacity(keys.count)
        for key in keys { preKeys.append((uint(try bytes(key, "id", count: 3)), try bytes(key, "value", count: 32))) }
        return Upload(
            registrationID: uint(try bytes(iq, "registration", count: 4)),
            identity: try bytes(iq, "identity", count: 32),
            preKeys: preKeys,
            signedPreKey: (uint(try bytes(skey, "id", count: 3)), try bytes(skey, "value", count: 32),
                           try bytes(skey, "signature", count: 64)))
    }

    /// The upload's identity must be the device's registered identity, and its signed prekey
    /// signature must verify under it.
    static func verify(_ upload: Upload, registeredIdentity: Curve25519PublicKey) throws(Refusal) {
        guard upload.identity == registeredIdentity.rawRepresentation else {
            throw .notAcceptable("identity differs from the registered one")
        }
        guard verifies(signature: upload.signedPreKey.signature, key: upload.signedPreKey.key, identity: registeredIdentity) else {
            throw .notAcceptable("signed prekey signature does not verify")
        }
    }

    /// XEdDSA over `0x05 ‖ key` (the key in its 33-byte Signal form).
    static func verifies(signature: Data, key: Data, identity: Curve25519PublicKey) -> Bool {
        guard signature.count == 64, key.count == 32 else { return false }
        return XEdDSA.verify(signature, for: Data([keyType]) + key, publicKey: identity)
    }

    // MARK: Bundles

    /// `<iq xmlns=encrypt type=get><key><user jid [reason]/>…</key></iq>`: the device JIDs asked for.
    static func parseBundleQuery(_ iq: Node) throws(Refusal) -> [JID] {
        guard let key = iq.child("key") else { throw .badRequest("<key> missing") }
        let users = key.children("user")
        guard !users.isEmpty, users.count <= maxBundleDevices else {
            throw .badRequest("bundle query for \(users.count) devices, 1…\(maxBundleDevices) allowed")
        }
        var out: [JID] = []
        for user in users {
            guard let jid = user.jid("jid") else { throw .badRequest("<user> without a jid") }
            out.append(jid)
        }
        return out
    }

    /// `<iq type=result><list><user jid><registration/><type/><identity/><skey/>[<key/>]</user>…</list>`,
    /// a user without a bundle carrying `<error code=404 text=item-not-found/>`.
    static func bundleAnswer(to query: Node, bundles: [(JID, PreKeyBundle?)]) -> Node {
        let users = bundles.map { jid, bundle -> Node in
            guard let bundle else {
                return Node("user", [Attribute("jid", .jid(jid))], content: .nodes([
                    Node("error", [Attribute("code", "404"), Attribute("text", "item-not-found")]),
                ]))
            }
            var children: [Node] = [
                binary("registration", be(bundle.registrationID, width: 4)),
                binary("type", Data([keyType])),
                binary("identity", bundle.identityKey.rawRepresentation),
                Node("skey", content: .nodes([
                    binary("id", be(bundle.signedPreKeyID, width: 3)),
                    binary("value", bundle.signedPreKey.rawRepresentation),
                    binary("signature", bundle.signedPreKeySignature),
                ])),
            ]
            if let id = bundle.preKeyID, let key = bundle.preKey {
                children.append(Node("key", content: .nodes([
                    binary("id", be(id, width: 3)), binary("value", key.rawRepresentation),
                ])))
            }
            return Node("user", [Attribute("jid", .jid(jid))], content: .nodes(children))
        }
        return Node("iq", [
            Attribute("from", .jid(.serverJID)), Attribute("type", "result"), Attribute("id", .string(query.string("id") ?? "")),
        ], content: .nodes([Node("list", content: .nodes(users))]))
    }

    // MARK: Pieces

    private static func bytes(_ node: Node, _ tag: String, count: Int) throws(Refusal) -> Data {
        guard let child = node.child(tag) else { throw .badRequest("<\(tag)> missing") }
        guard let value = child.bytes, value.count == count else { throw .badRequest("<\(tag)> is not \(count) bytes") }
        return Data(value)
    }

    private static func binary(_ tag: String, _ data: Data) -> Node { Node(tag, content: .bytes([UInt8](data))) }

    static func uint(_ bytes: Data) -> UInt32 { bytes.prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) } }

    private static func be(_ value: UInt32, width: Int) -> Data {
        Data((0..<width).reversed().map { UInt8(truncatingIfNeeded: value >> (8 * $0)) })
    }
}
