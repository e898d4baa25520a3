import Foundation
import WACrypto
import WAProto

/// One sender key of a group sender: id, chain position, signing key (the
/// private half only for our own), and kept keys of skipped messages.
/// Wraps libsignal's SenderKeyStateStructure.
struct SenderKeyState: Sendable, Equatable {
    var structure: SignalStorage_SenderKeyStateStructure

    init(structure: SignalStorage_SenderKeyStateStructure) { self.structure = structure }

    init(keyID: UInt32, chainKey: SenderChainKey, signingPublic: Curve25519PublicKey, signingPrivate: Curve25519PrivateKey?) {
        var s = SignalStorage_SenderKeyStateStructure()
        s.senderKeyID = keyID
        s.senderChainKey.iteration = chainKey.iteration
        s.senderChainKey.seed = chainKey.seed
        s.senderSigningKey.`public` = signingPublic.signalSerialized
        if let signingPrivate { s.senderSigningKey.`private` = signingPrivate.rawRepresentation }
        structure = s
    }

    var keyID: UInt32 { structure.senderKeyID }

    var chainKey: SenderChainKey {
        get { SenderChainKey(iteration: structure.senderChainKey.iteration, seed: structure.senderChainKey.seed) }
        set {
            structure.senderChainKey.iteration = newValue.iteration
            structure.senderChainKey.seed = newValue.seed
        }
    }

    var signingPublicKey: Curve25519PublicKey {
        get throws { try Curve25519PublicKey(signalKey: structure.senderSigningKey.`public`) }
    }

    var signingPrivateKey: Curve25519PrivateKey {
        get throws {
            guard structure.senderSigningKey.hasPrivate,
                  let key = try? Curve25519PrivateKey(rawRepresentation: structure.senderSigningKey.`private`) else {
                throw SignalError(.noSenderKey, "this sender key is someone else's: no private signing key")
            }
            return key
        }
    }

    mutating func takeMessageKey(iteration: UInt32) -> SenderMessageKey? {
        guard let i = structure.senderMessageKeys.firstIndex(where: { $0.iteration == iteration }) else { return nil }
        let kept = structure.senderMessageKeys.remove(at: i)
        return SenderMessageKey(iteration: kept.iteration, seed: kept.seed)
    }

    mutating func keepMessageKey(_ key: SenderMessageKey) {
        var kept = SignalStorage_SenderKeyStateStructure.SenderMessageKey()
        kept.iteration = key.iteration
        kept.seed = key.seed
        structure.senderMessageKeys.append(kept)
        let overflow = structure.senderMessageKeys.count - SignalConstants.maxSkippedKeysPerChain
        if overflow > 0 { structure.senderMessageKeys.removeFirst(overflow) }
    }
}
