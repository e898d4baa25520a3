import Foundation
import WABinary
import WACrypto
import WAClient
import WASim
import WAProto
import WASignal
import XCTest

/// Every builder's node goes through the real binary codec before a parser sees it.
func wire(_ node: Node) throws -> Node {
    try BinaryDecoder.decode(BinaryEncoder.encode(node))
}

/// One simulated device: its own Signal store, identity, prekeys and ADV identity bytes.
struct Party {
    let device: JID
    let store: InMemorySignalStore
    let signedPreKey: SignedPreKeyRecord
    let preKeys: [PreKeyRecord]
    let deviceIdentity: Data

    var user: JID { device.nonAD }
    var sender: MessageSender { MessageSender(store: store, ownDevice: device, deviceIdentity: deviceIdentity) }

    /// The account (primary device) key of `user`, the same for all its parties, so that a
    /// companion's ADV identity is signed by the identity of the user's device 0.
    static func accountKey(_ user: String) -> Curve25519KeyPair {
        let seed = Symmetric.sha256(Data("account-\(user)".utf8))
        return Curve25519KeyPair(privateKey: try! Curve25519PrivateKey(rawRepresentation: seed))
    }

    /// `account`: the user's primary identity (default: derived from `user`; a reinstalled
    /// phone passes a new one). Device 0 uses it as its own identity.
    static func make(
        _ user: String, device: UInt16, server: String = JID.userServer, preKeyCount: Int = 4, account: Curve25519KeyPair? = nil
    ) async throws -> Party {
        let accountPair = account ?? accountKey(user)
        let store = device == 0 ? InMemorySignalStore(identity: IdentityKeyPair(keyPair: accountPair)) : InMemorySignalStore()
        let identity = await store.identityKeyPair()
        let signed = try SignedPreKeyRecord.generate(id: 7, identity: identity)
        await store.storeSignedPreKey(signed)
        let preKeys = KeyHelper.generatePreKeys(start: 100, count: preKeyCount)
        for key in preKeys { await store.storePreKey(key) }
        // A real ADV identity: the account signs the device, the device countersigns.
        var details = WAAdv_ADVDeviceIdentity()
        details.rawID = 1
        details.timestamp = 1_700_000_000
        details.keyIndex = UInt32(device)
        var adv = WAAdv_ADVSignedDeviceIdentity()
        adv.details = try details.serializedData()
        adv.accountSignatureKey = accountPair.publicKey.rawRepresentation
        let own = identity.publicKey.rawRepresentation
        adv.accountSignature = try XEdDSA.sign(Pairing.accountSignaturePrefix + adv.details + own, privateKey: accountPair.privateKey)
        adv.deviceSignature = try XEdDSA.sign(
            Pairing.deviceSignaturePrefix + adv.details + own + adv.accountSignatureKey, privateKey: identity.keyPair.privateKey)
        return Party(
            device: JID(user: user, device: device, server: server), store: store, signedPreKey: signed,
            preKeys: preKeys, deviceIdentity: try adv.serializedData())
    }

    func uploadIQ() async throws -> Node {
        try PreKeyNodes.uploadIQ(
            id: "up-\(device)", registrationID: await store.localRegistrationID(),
            identity: await store.identityKeyPair().publicKey, signedPreKey: signedPreKey, preKeys: preKeys)
    }

    func receiver() -> MessageReceiver { MessageReceiver(store: store, ownDevice: device) }

    func sessionBytes(with peer: JID) async -> Data? {
        await store.loadSession(for: SignalAddress(jid: peer))?.serialized()
    }
}

/// A test-only server: keeps uploaded keys and device lists, answers usync and
/// bundle queries with the server-side builders, and fans a sent stanza out
/// per device the way the simulator facts describe.
final class FakeServer {
    var uploads: [JID: PreKeyNodes.Upload] = [:]
    var remainingPreKeys: [JID: [(id: UInt32, key: Curve25519PublicKey)]] = [:]
    var devices: [JID: [JID]] = [:]
    var clock: Int = 1_700_000_000

    func register(_ party: Party) async throws {
        let upload = try PreKeyNodes.parseUpload(try wire(try await party.uploadIQ()))
        uploads[party.device] = upload
        remainingPreKeys[party.device] = upload.preKeys
        devices[party.user, default: []].append(party.device)
    }

    func usyncAnswer(_ query: Node) throws -> Node {
        let users = try ServerUsync.parseQuery(query)
        return ServerUsync.answer(to: query, users: users.map {
            ServerUsync.UserDevices(user: $0, devices: devices[$0] ?? [], lid: JID(user: "9\($0.user)", server: JID.lidServer))
        })
    }

    func bundleAnswer(_ query: Node) throws -> Node {
        let asked = try PreKeyNodes.parseBundleQuery(query)
        return PreKeyNodes.bundleAnswer(to: query, bundles: asked.map { jid in
            guard let upload = uploads[jid] else { return (jid, nil) }
            let preKey = remainingPreKeys[jid]?.isEmpty == false ? remainingPreKeys[jid]!.removeFirst() : nil
            return (jid, upload.bundle(deviceID: UInt32(jid.device), preKey: preKey))
        })
    }

    var groupMembers: [JID] = []

    /// Fans a client's `<message>` out per device with the shared server-side routing.
    func deliver(_ sent: Node, from sender: JID, pushName: String = "Sender") throws -> [JID: Node] {
        clock += 1
        let members = groupMembers.flatMap { devices[$0] ?? [] }
        var out: [JID: Node] = [:]
        for delivery in try ServerMessageRouting.deliveries(
            of: sent, from: sender, memberDevices: members, timestamp: clock, pushName: pushName) {
            out[delivery.device] = try wire(delivery.node)
        }
        return out
    }

    /// A receipt a client sent, as the server forwards it to the original sender.
    func forward(receipt: Node, from device: JID) throws -> Node {
        try wire(try ServerMessageRouting.forward(receipt: try wire(receipt), from: device, timestamp: clock))
    }
}

/// Everything a sender does before a send: usync, bundles for new devices.
func prepareDirect(_ sender: Party, to user: JID, server: FakeServer) async throws -> (recipient: [JID], own: [JID], bundles: [JID: PreKeyBundle]) {
    let query = try wire(try UsyncNodes.deviceQueryIQ(id: "u1", sid: "s1", users: [user, sender.user]))
    let answer = try UsyncNodes.parseDeviceAnswer(try wire(try server.usyncAnswer(query)))
    let recipient = try XCTUnwrap(answer.first { $0.user == user }).devices
    let own = try XCTUnwrap(answer.first { $0.user == sender.user }).devices
    let bundles = try await fetchBundles(sender, for: recipient + own, server: server)
    return (recipient, own, bundles)
}

func fetchBundles(_ sender: Party, for devices: [JID], server: FakeServer) async throws -> [JID: PreKeyBundle] {
    let missing = try await sender.sender.devicesNeedingBundles(devices)
    guard !missing.isEmpty else { return [:] }
    let query = try wire(try PreKeyNodes.bundleQueryIQ(id: "k1", devices: missing))
    let parsed = try PreKeyNodes.parseBundles(try wire(try server.bundleAnswer(query)))
    return try parsed.mapValues { try $0.get() }
}

func sendDirect(
    _ sender: Party, to user: JID, _ message: WAE2E_Message, id: String, server: FakeServer
) async throws -> (OutgoingMessage, [JID: Node]) {
    let prep = try await prepareDirect(sender, to: user, server: server)
    let out = try await sender.sender.directMessage(
        id: id, to: user, message: message, recipientDevices: prep.recipient, ownDevices: prep.own, bundles: prep.bundles)
    return (out, try server.deliver(try wire(out.node), from: sender.device))
}

func text(_ string: String) -> WAE2E_Message {
    var message = WAE2E_Message()
    message.conversation = string
    return message
}

/// The message of an outcome, or a test failure.
func expectMessage(_ outcome: ReceiveOutcome, file: StaticString = #filePath, line: UInt = #line) throws -> (ReceivedMessage, Node) {
    guard case .message(let message, let receipt) = outcome else {
        XCTFail("expected a message, got \(outcome)", file: file, line: line)
        throw WAClientError(.stanzaMalformed, "not a message")
    }
    return (message, receipt)
}
