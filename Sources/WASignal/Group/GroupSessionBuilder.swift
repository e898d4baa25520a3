import Foundation
import WACrypto

/// Creates our sender key for a group and installs the ones others send us.
public struct GroupSessionBuilder: Sendable {
    public let store: any SignalProtocolStore

    public init(store: any SignalProtocolStore) { self.store = store }

    /// Our distribution message for `name` (our own address in a group),
    /// creating the sender key on first use. It carries the chain at its
    /// current iteration, so members added later cannot read earlier messages.
    public func create(for name: SenderKeyName) async throws -> SenderKeyDistributionMessage {
        var record = try await store.loadSenderKey(for: name) ?? SenderKeyRecord()
        if record.isEmpty {
            let signing = Curve25519KeyPair.generate()
            let chain = SenderChainKey(iteration: 0, seed: Symmetric.randomBytes(32))
            record.add(SenderKeyState(
                keyID: KeyHelper.generateSenderKeyID(), chainKey: chain, signingPublic: signing.publicKey,
                signingPrivate: signing.privateKey))
            try await store.storeSenderKey(record, for: name)
        }
        let state = record.states[0]
        return SenderKeyDistributionMessage(
            keyID: state.keyID, iteration: state.chainKey.iteration, chainKey: state.chainKey.seed,
            signingKey: try state.signingPublicKey)
    }

    /// Replaces our sender key for `name` with a new one (new key id, chain
    /// and signing key) and returns its distribution message. WhatsApp does
    /// this when members leave, so they cannot read what follows; members keep
    /// our previous key (up to five) for messages still in flight.
    public func rotate(for name: SenderKeyName) async throws -> SenderKeyDistributionMessage {
        var changes = SignalStoreChanges()
        changes.senderKeys = [(name, SenderKeyRecord())]
        try await store.commit(changes)
        return try await create(for: name)
    }

    /// Installs a member's sender key from its distribution message.
    public func process(_ message: SenderKeyDistributionMessage, from name: SenderKeyName) async throws {
        var record = try await store.loadSenderKey(for: name) ?? SenderKeyRecord()
        record.add(SenderKeyState(
            keyID: message.keyID, chainKey: SenderChainKey(iteration: message.iteration, seed: message.chainKey),
            signingPublic: message.signingKey, signingPrivate: nil))
        try await store.storeSenderKey(record, for: name)
    }
}
