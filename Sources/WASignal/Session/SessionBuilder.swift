import Foundation
import WACrypto

/// Opens sessions: as initiator from a peer's prekey bundle, and (inside
/// `SessionCipher`) as responder from a PreKeySignalMessage.
public struct SessionBuilder: Sendable {
    public let store: any SignalProtocolStore
    public let address: SignalAddress

    public init(store: any SignalProtocolStore, address: SignalAddress) {
        self.store = store
        self.address = address
    }

    /// X3DH as initiator. Verifies the signed prekey's signature and the
    /// identity's trust first; the new state replaces (and archives) any
    /// current one. Until the peer answers, every message we send is a
    /// PreKeySignalMessage.
    public func process(bundle: PreKeyBundle) async throws {
        try await checkTrust(bundle.identityKey, direction: .sending)
        guard XEdDSA.verify(bundle.signedPreKeySignature, for: bundle.signedPreKey.signalSerialized, publicKey: bundle.identityKey) else {
            throw SignalError(.invalidSignature, "signed prekey signature does not verify under the bundle's identity key")
        }
        let ourIdentity = try await store.identityKeyPair()
        let baseKey = Curve25519KeyPair.generate()
        var state = try RatchetingSession.initializeAsAlice(
            ourIdentity: ourIdentity, ourBaseKey: baseKey, theirIdentity: bundle.identityKey,
            theirSignedPreKey: bundle.signedPreKey, theirOneTimePreKey: bundle.preKey)
        state.setPendingPreKey(.init(
            preKeyID: bundle.preKey == nil ? nil : bundle.preKeyID, signedPreKeyID: bundle.signedPreKeyID,
            baseKey: baseKey.publicKey))
        state.structure.localRegistrationID = try await store.localRegistrationID()
        state.structure.remoteRegistrationID = bundle.registrationID
        state.structure.aliceBaseKey = baseKey.publicKey.signalSerialized

        var record = try await store.loadSession(for: address) ?? SessionRecord()
        record.promote(state)
        var changes = SignalStoreChanges()
        changes.identities = [(address, bundle.identityKey)]
        changes.sessions = [(address, record)]
        try await store.commit(changes)
    }

    /// X3DH as responder, on a copy of the record. Returns the one-time
    /// prekey id to delete once the whole decrypt has succeeded (nil when the
    /// message used none, or when this base key was already processed — a
    /// retransmitted first message then decrypts under the existing state).
    func process(_ message: PreKeySignalMessage, record: inout SessionRecord) async throws -> UInt32? {
        try await checkTrust(message.identityKey, direction: .receiving)
        let baseKey = message.baseKey.signalSerialized
        if record.hasState(version: UInt32(SignalConstants.currentVersion), baseKey: baseKey) { return nil }

        guard let signedPreKey = try await store.loadSignedPreKey(id: message.signedPreKeyID) else {
            throw SignalError(.invalidKeyID, "no signed prekey with id \(message.signedPreKeyID)")
        }
        var oneTime: PreKeyRecord?
        if let id = message.preKeyID {
            guard let found = try await store.loadPreKey(id: id) else {
                throw SignalError(.invalidKeyID, "no one-time prekey with id \(id) (used already?)")
            }
            oneTime = found
        }
        let ourIdentity = try await store.identityKeyPair()
        var state = try RatchetingSession.initializeAsBob(
            ourIdentity: ourIdentity, ourSignedPreKey: signedPreKey.keyPair, ourOneTimePreKey: oneTime?.keyPair,
            theirIdentity: message.identityKey, theirBaseKey: message.baseKey)
        state.structure.localRegistrationID = try await store.localRegistrationID()
        state.structure.remoteRegistrationID = message.registrationID
        state.structure.aliceBaseKey = baseKey
        record.promote(state)
        return oneTime?.id
    }

    func checkTrust(_ key: Curve25519PublicKey, direction: IdentityDirection) async throws {
        guard try await store.isTrustedIdentity(key, for: address, direction: direction) else {
            let previous = try await store.identity(for: address)
            throw SignalError(
                .untrustedIdentity, "identity key of \(address) changed",
                identityChange: IdentityChange(address: address, previousKey: previous, newKey: key))
        }
    }
}
