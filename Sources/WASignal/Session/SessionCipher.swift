import Foundation
import WACrypto

/// Encrypts and decrypts 1:1 messages with one peer device.
///
/// Every operation loads the session record, works on a copy, and stores the
/// record (and saves the identity, deletes a used one-time prekey) only when
/// the whole operation succeeded: a bad, altered or replayed message leaves
/// the store exactly as it was.
public struct SessionCipher: Sendable {
    public let store: any SignalProtocolStore
    public let address: SignalAddress

    public init(store: any SignalProtocolStore, address: SignalAddress) {
        self.store = store
        self.address = address
    }

    // MARK: Encrypt

    public func encrypt(_ plaintext: some DataProtocol) async throws -> CiphertextMessage {
        guard var record = try await store.loadSession(for: address), var state = record.current, state.hasSenderChain else {
            throw SignalError(.noSession, "no session with \(address)")
        }
        let remoteIdentity = try state.remoteIdentityKey
        try await SessionBuilder(store: store, address: address).checkTrust(remoteIdentity, direction: .sending)

        let chainKey = state.senderChainKey
        let keys = chainKey.messageKeys
        let ciphertext = try Self.aesEncrypt(plaintext, keys)
        let message = SignalMessage(
            ratchetKey: try Curve25519PublicKey(signalKey: state.senderRatchetPublicKey), counter: chainKey.index,
            previousCounter: state.structure.previousCounter, ciphertext: ciphertext, macKey: keys.macKey,
            senderIdentity: try state.localIdentityKey, receiverIdentity: remoteIdentity)

        let result: CiphertextMessage
        if let pending = try state.pendingPreKey {
            let preKeyMessage = PreKeySignalMessage(
                registrationID: state.structure.localRegistrationID, preKeyID: pending.preKeyID,
                signedPreKeyID: pending.signedPreKeyID, baseKey: pending.baseKey,
                identityKey: try state.localIdentityKey, message: message)
            result = .preKey(preKeyMessage.serialized)
        } else {
            result = .whisper(message.serialized)
        }
        state.senderChainKey = chainKey.next
        record.current = state
        var changes = SignalStoreChanges()
        changes.identities = [(address, remoteIdentity)]
        changes.sessions = [(address, record)]
        try await store.commit(changes)
        return result
    }

    // MARK: Decrypt

    /// Decrypts by `<enc type>`: "msg" or "pkmsg".
    public func decrypt(_ message: CiphertextMessage) async throws -> Data {
        switch message {
        case .whisper(let data): try await decrypt(signalMessage: data)
        case .preKey(let data): try await decrypt(preKeySignalMessage: data)
        }
    }

    /// `keeping`: also store the plaintext under this key in the same commit
    /// as the session change (see `PendingPlaintextStore`).
    public func decrypt(signalMessage bytes: Data, keeping: PendingPlaintextKey? = nil) async throws -> Data {
        let message = try SignalMessage(serialized: bytes)
        guard var record = try await store.loadSession(for: address), !record.isEmpty else {
            throw SignalError(.noSession, "no session with \(address)")
        }
        let (plaintext, remoteIdentity) = try decrypt(message, record: &record)
        try await SessionBuilder(store: store, address: address).checkTrust(remoteIdentity, direction: .receiving)
        var changes = SignalStoreChanges()
        changes.identities = [(address, remoteIdentity)]
        changes.sessions = [(address, record)]
        if let keeping { changes.pendingPlaintexts = [(keeping, plaintext)] }
        try await store.commit(changes)
        return plaintext
    }

    public func decrypt(preKeySignalMessage bytes: Data, keeping: PendingPlaintextKey? = nil) async throws -> Data {
        let message = try PreKeySignalMessage(serialized: bytes)
        var record = try await store.loadSession(for: address) ?? SessionRecord()
        let usedPreKey = try await SessionBuilder(store: store, address: address).process(message, record: &record)
        let (plaintext, _) = try decrypt(message.message, record: &record)
        // Everything checked out: commit, in one call.
        var changes = SignalStoreChanges()
        changes.identities = [(address, message.identityKey)]
        changes.sessions = [(address, record)]
        if let usedPreKey { changes.removedPreKeys = [usedPreKey] }
        if let keeping { changes.pendingPlaintexts = [(keeping, plaintext)] }
        try await store.commit(changes)
        return plaintext
    }

    /// Tries the current state, then the archived ones (newest first); a
    /// state that works becomes current. The error reported is the current
    /// state's, the one that matters unless the peer went back in time.
    private func decrypt(_ message: SignalMessage, record: inout SessionRecord) throws -> (Data, Curve25519PublicKey) {
        var firstError: (any Error)?
        if var state = record.current {
            do {
                let plaintext = try Self.decrypt(message, state: &state)
                record.current = state
                return (plaintext, try state.remoteIdentityKey)
            } catch {
                firstError = error
            }
        }
        for (i, archived) in record.previous.enumerated() {
            var state = archived
            guard let plaintext = try? Self.decrypt(message, state: &state) else { continue }
            record.previous.remove(at: i)
            record.promote(state)
            return (plaintext, try state.remoteIdentityKey)
        }
        throw firstError ?? SignalError(.noSession, "no usable session state with \(address)")
    }

    static func decrypt(_ message: SignalMessage, state: inout SessionState) throws -> Data {
        guard state.hasSenderChain else { throw SignalError(.noSession, "session state is not initialised") }
        guard UInt32(message.version) == state.version else {
            throw SignalError(.invalidVersion, "message version \(message.version) does not match session version \(state.version)")
        }
        let chainKey = try receiverChainKey(for: message.ratchetKey, state: &state)
        let keys = try messageKeys(for: message.ratchetKey, chainKey: chainKey, counter: message.counter, state: &state)
        try message.verifyMAC(macKey: keys.macKey, sender: try state.remoteIdentityKey, receiver: try state.localIdentityKey)
        let plaintext = try aesDecrypt(message.ciphertext, keys)
        // The peer has our answer's keys now: stop sending PreKeySignalMessages.
        state.clearPendingPreKey()
        return plaintext
    }

    /// The receiving chain for the peer's ratchet key, doing a DH ratchet
    /// step (new receiving chain, new sending key pair) when it is new.
    private static func receiverChainKey(for theirRatchetKey: Curve25519PublicKey, state: inout SessionState) throws -> ChainKey {
        if let existing = state.receiverChainKey(theirRatchetKey) { return existing }
        let ourRatchetKey = try state.senderRatchetKeyPair
        let (receivingRoot, receivingChain) = try state.rootKey.createChain(theirRatchetKey: theirRatchetKey, ourRatchetKey: ourRatchetKey)
        let ourNewRatchetKey = Curve25519KeyPair.generate()
        let (sendingRoot, sendingChain) = try receivingRoot.createChain(theirRatchetKey: theirRatchetKey, ourRatchetKey: ourNewRatchetKey)
        state.rootKey = sendingRoot
        state.addReceiverChain(theirRatchetKey, chainKey: receivingChain)
        let sent = state.senderChainKey.index
        state.structure.previousCounter = sent > 0 ? sent - 1 : 0
        state.setSenderChain(ratchetKey: ourNewRatchetKey, chainKey: sendingChain)
        return receivingChain
    }

    /// The keys for `counter`: a kept key of a skipped message, or the chain
    /// advanced to it (keeping the keys it skips, within the bounds).
    private static func messageKeys(
        for theirRatchetKey: Curve25519PublicKey, chainKey: ChainKey, counter: UInt32, state: inout SessionState
    ) throws -> MessageKeys {
        if chainKey.index > counter {
            if let kept = state.takeMessageKeys(theirRatchetKey, counter: counter) { return kept }
            throw SignalError(.duplicateMessage, "message \(counter) already received (chain at \(chainKey.index))")
        }
        guard counter - chainKey.index <= SignalConstants.maxForwardJump else {
            throw SignalError(.tooFarInFuture, "message \(counter) is more than \(SignalConstants.maxForwardJump) ahead of the chain (\(chainKey.index))")
        }
        var chain = chainKey
        while chain.index < counter {
            state.keepMessageKeys(theirRatchetKey, chain.messageKeys)
            chain = chain.next
        }
        state.setReceiverChainKey(theirRatchetKey, chainKey: chain.next)
        return chain.messageKeys
    }

    static func aesEncrypt(_ plaintext: some DataProtocol, _ keys: MessageKeys) throws -> Data {
        do { return try Symmetric.aesCBCEncrypt(plaintext, key: keys.cipherKey, iv: keys.iv) } catch {
            throw SignalError(.invalidKey, "AES-CBC encryption failed")
        }
    }

    static func aesDecrypt(_ ciphertext: Data, _ keys: MessageKeys) throws -> Data {
        do { return try Symmetric.aesCBCDecrypt(ciphertext, key: keys.cipherKey, iv: keys.iv) } catch {
            throw SignalError(.invalidMessage, "ciphertext does not decrypt (length or padding)")
        }
    }
}
