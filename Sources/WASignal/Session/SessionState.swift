import Foundation
import WACrypto
import WAProto

/// One double-ratchet session with a peer device: root key, our sending
/// chain, up to five receiving chains, and the X3DH facts needed until the
/// peer answers.
///
/// The state *is* libsignal's SessionStructure protobuf (so it serialises to
/// the bytes other libsignal stores use); this type gives it typed accessors.
/// It is a value: a decrypt works on a copy and only a successful one is kept.
struct SessionState: Sendable, Equatable {
    var structure: SignalStorage_SessionStructure

    init() { structure = SignalStorage_SessionStructure() }
    init(structure: SignalStorage_SessionStructure) { self.structure = structure }

    var version: UInt32 {
        get { structure.sessionVersion == 0 ? 2 : structure.sessionVersion }
        set { structure.sessionVersion = newValue }
    }

    var localIdentityKey: Curve25519PublicKey {
        get throws { try Curve25519PublicKey(signalKey: structure.localIdentityPublic) }
    }
    var remoteIdentityKey: Curve25519PublicKey {
        get throws { try Curve25519PublicKey(signalKey: structure.remoteIdentityPublic) }
    }

    var rootKey: RootKey {
        get { RootKey(key: structure.rootKey) }
        set { structure.rootKey = newValue.key }
    }

    var hasSenderChain: Bool { structure.hasSenderChain }

    var senderRatchetKeyPair: Curve25519KeyPair {
        get throws { try Curve25519KeyPair(signalPrivateKey: structure.senderChain.senderRatchetKeyPrivate) }
    }
    var senderRatchetPublicKey: Data { structure.senderChain.senderRatchetKey }

    var senderChainKey: ChainKey {
        get { ChainKey(key: structure.senderChain.chainKey.key, index: structure.senderChain.chainKey.index) }
        set {
            structure.senderChain.chainKey.key = newValue.key
            structure.senderChain.chainKey.index = newValue.index
        }
    }

    mutating func setSenderChain(ratchetKey: Curve25519KeyPair, chainKey: ChainKey) {
        var chain = SignalStorage_SessionStructure.Chain()
        chain.senderRatchetKey = ratchetKey.publicKey.signalSerialized
        chain.senderRatchetKeyPrivate = ratchetKey.privateKey.rawRepresentation
        chain.chainKey.key = chainKey.key
        chain.chainKey.index = chainKey.index
        structure.senderChain = chain
    }

    // MARK: Receiving chains

    private func receiverChainIndex(_ ratchetKey: Curve25519PublicKey) -> Int? {
        let wanted = ratchetKey.signalSerialized
        return structure.receiverChains.firstIndex { $0.senderRatchetKey == wanted }
    }

    func receiverChainKey(_ ratchetKey: Curve25519PublicKey) -> ChainKey? {
        guard let i = receiverChainIndex(ratchetKey) else { return nil }
        let chain = structure.receiverChains[i].chainKey
        return ChainKey(key: chain.key, index: chain.index)
    }

    mutating func addReceiverChain(_ ratchetKey: Curve25519PublicKey, chainKey: ChainKey) {
        var chain = SignalStorage_SessionStructure.Chain()
        chain.senderRatchetKey = ratchetKey.signalSerialized
        chain.chainKey.key = chainKey.key
        chain.chainKey.index = chainKey.index
        structure.receiverChains.append(chain)
        if structure.receiverChains.count > SignalConstants.maxReceiverChains {
            structure.receiverChains.removeFirst()
        }
    }

    mutating func setReceiverChainKey(_ ratchetKey: Curve25519PublicKey, chainKey: ChainKey) {
        guard let i = receiverChainIndex(ratchetKey) else { return }
        structure.receiverChains[i].chainKey.key = chainKey.key
        structure.receiverChains[i].chainKey.index = chainKey.index
    }

    /// Takes out the kept key of a skipped message, if we have it.
    mutating func takeMessageKeys(_ ratchetKey: Curve25519PublicKey, counter: UInt32) -> MessageKeys? {
        guard let i = receiverChainIndex(ratchetKey),
              let k = structure.receiverChains[i].messageKeys.firstIndex(where: { $0.index == counter }) else { return nil }
        let stored = structure.receiverChains[i].messageKeys.remove(at: k)
        return MessageKeys(cipherKey: stored.cipherKey, macKey: stored.macKey, iv: stored.iv, counter: stored.index)
    }

    mutating func keepMessageKeys(_ ratchetKey: Curve25519PublicKey, _ keys: MessageKeys) {
        guard let i = receiverChainIndex(ratchetKey) else { return }
        var stored = SignalStorage_SessionStructure.Chain.MessageKey()
        stored.index = keys.counter
        stored.cipherKey = keys.cipherKey
        stored.macKey = keys.macKey
        stored.iv = keys.iv
        structure.receiverChains[i].messageKeys.append(stored)
        let overflow = structure.receiverChains[i].messageKeys.count - SignalConstants.maxSkippedKeysPerChain
        if overflow > 0 { structure.receiverChains[i].messageKeys.removeFirst(overflow) }
    }

    // MARK: Until the peer answers

    struct PendingPreKey: Sendable {
        var preKeyID: UInt32?
        var signedPreKeyID: UInt32
        var baseKey: Curve25519PublicKey
    }

    var pendingPreKey: PendingPreKey? {
        get throws {
            guard structure.hasPendingPreKey else { return nil }
            let p = structure.pendingPreKey
            return PendingPreKey(
                preKeyID: p.hasPreKeyID ? p.preKeyID : nil, signedPreKeyID: UInt32(bitPattern: p.signedPreKeyID),
                baseKey: try Curve25519PublicKey(signalKey: p.baseKey))
        }
    }

    mutating func setPendingPreKey(_ pending: PendingPreKey) {
        var p = SignalStorage_SessionStructure.PendingPreKey()
        if let id = pending.preKeyID { p.preKeyID = id }
        p.signedPreKeyID = Int32(bitPattern: pending.signedPreKeyID)
        p.baseKey = pending.baseKey.signalSerialized
        structure.pendingPreKey = p
    }

    mutating func clearPendingPreKey() { structure.clearPendingPreKey() }
}
