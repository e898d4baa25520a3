import Foundation
import WACrypto

/// Encrypts our group messages and decrypts a member's, with sender keys.
/// As with `SessionCipher`, the record is stored only after a successful
/// operation.
public struct GroupCipher: Sendable {
    public let store: any SignalProtocolStore
    public let name: SenderKeyName

    public init(store: any SignalProtocolStore, name: SenderKeyName) {
        self.store = store
        self.name = name
    }

    public func encrypt(_ plaintext: some DataProtocol) async throws -> Data {
        guard var record = try await store.loadSenderKey(for: name), var state = record.states.first else {
            throw SignalError(.noSenderKey, "no sender key for \(name)")
        }
        let messageKey = state.chainKey.messageKey
        let (iv, key) = messageKey.ivAndKey
        let ciphertext: Data
        do { ciphertext = try Symmetric.aesCBCEncrypt(plaintext, key: key, iv: iv) } catch {
            throw SignalError(.invalidKey, "AES-CBC encryption failed")
        }
        let message = try SenderKeyMessage(
            keyID: state.keyID, iteration: messageKey.iteration, ciphertext: ciphertext, signingKey: try state.signingPrivateKey)
        state.chainKey = state.chainKey.next
        record.replace(state)
        var changes = SignalStoreChanges()
        changes.senderKeys = [(name, record)]
        try await store.commit(changes)
        return message.serialized
    }

    /// `keeping`: also store the plaintext under this key in the same commit
    /// as the sender key change (see `PendingPlaintextStore`).
    public func decrypt(_ bytes: Data, keeping: PendingPlaintextKey? = nil) async throws -> Data {
        let message = try SenderKeyMessage(serialized: bytes)
        guard var record = try await store.loadSenderKey(for: name), !record.isEmpty else {
            throw SignalError(.noSenderKey, "no sender key for \(name)")
        }
        guard var state = record.state(keyID: message.keyID) else {
            throw SignalError(.noSenderKey, "no sender key with id \(message.keyID) for \(name)")
        }
        try message.verifySignature(try state.signingPublicKey)
        let messageKey = try Self.messageKey(iteration: message.iteration, state: &state)
        let (iv, key) = messageKey.ivAndKey
        let plaintext: Data
        do { plaintext = try Symmetric.aesCBCDecrypt(message.ciphertext, key: key, iv: iv) } catch {
            throw SignalError(.invalidMessage, "group ciphertext does not decrypt (length or padding)")
        }
        record.replace(state)
        var changes = SignalStoreChanges()
        changes.senderKeys = [(name, record)]
        if let keeping { changes.pendingPlaintexts = [(keeping, plaintext)] }
        try await store.commit(changes)
        return plaintext
    }

    private static func messageKey(iteration: UInt32, state: inout SenderKeyState) throws -> SenderMessageKey {
        var chain = state.chainKey
        if chain.iteration > iteration {
            if let kept = state.takeMessageKey(iteration: iteration) { return kept }
            throw SignalError(.duplicateMessage, "group message \(iteration) already received (chain at \(chain.iteration))")
        }
        guard iteration - chain.iteration <= SignalConstants.maxForwardJump else {
            throw SignalError(.tooFarInFuture, "group message \(iteration) is more than \(SignalConstants.maxForwardJump) ahead of the chain (\(chain.iteration))")
        }
        while chain.iteration < iteration {
            state.keepMessageKey(chain.messageKey)
            chain = chain.next
        }
        state.chainKey = chain.next
        return chain.messageKey
    }
}
