import Foundation
import WABinary
import WAClient
import WACrypto
import WASignal

/// A linked device whose keys the simulator holds and which has no connection: it decrypts
/// what is delivered to it at once and keeps the ids of what it read (the newest
/// `maxReceived`, text never logged). Lets a test build a group of thousands of devices
/// with real prekey bundles without thousands of live clients. It sends no receipts.
actor SimHeadlessDevice {
    static let maxReceived = 1_000

    let jid: JID
    let store: InMemorySignalStore
    private var receiver: MessageReceiver
    /// Message id → text (nil for other kinds), of what decrypted.
    private(set) var received: [String: String?] = [:]
    private var order: [String] = []
    private(set) var failures = 0

    /// A fresh identity, a signed prekey (id 1) and `preKeys` one-time prekeys (ids 1…); the
    /// `SimDevice` the server hands bundles out of.
    static func make(jid: JID, lid: JID, keyIndex: UInt32, preKeys count: Int) async throws -> (SimHeadlessDevice, SimDevice) {
        let identity = IdentityKeyPair.generate()
        let store = InMemorySignalStore(identity: identity)
        let signed = try SignedPreKeyRecord.generate(id: 1, identity: identity)
        await store.storeSignedPreKey(signed)
        var published: [UInt32: Data] = [:]
        for id in 1...UInt32(max(1, count)) {
            let key = PreKeyRecord(id: id, keyPair: .generate())
            await store.storePreKey(key)
            published[id] = key.keyPair.publicKey.rawRepresentation
        }
        let device = SimDevice(
            jid: jid, lid: lid, noiseKey: Curve25519KeyPair.generate().publicKey, identityKey: identity.publicKey,
            registrationID: await store.localRegistrationID(), keyIndex: keyIndex,
            signedPreKey: (signed.id, signed.keyPair.publicKey.rawRepresentation, signed.signature), preKeys: published)
        return (SimHeadlessDevice(jid: jid, lid: lid, store: store), device)
    }

    private init(jid: JID, lid: JID, store: InMemorySignalStore) {
        self.jid = jid
        self.store = store
        receiver = MessageReceiver(store: store, ownDevice: jid, ownLID: lid)
    }

    func receive(_ node: Node) async {
        var working = receiver
        let outcome = try? await working.receive(node)
        receiver = working
        switch outcome {
        case .message(let message, _):
            var text: String?
            if case .text(let body, _) = message.content { text = body }
            if received.updateValue(text, forKey: message.id) == nil { order.append(message.id) }
            while order.count > Self.maxReceived { received[order.removeFirst()] = nil }
        case .ignored: break
        case .undecryptable, nil: failures += 1
        }
    }

    func text(of id: String) -> String?? { received[id] }
}
