import Foundation
import WACrypto

/// The root of the double ratchet: each Diffie-Hellman ratchet step mixes a
/// new shared secret in and yields a new root key and a new chain.
struct RootKey: Sendable {
    var key: Data

    func createChain(theirRatchetKey: Curve25519PublicKey, ourRatchetKey: Curve25519KeyPair) throws -> (RootKey, ChainKey) {
        let secret = try SignalConstants.agree(ourRatchetKey.privateKey, theirRatchetKey)
        let material = Symmetric.hkdfSHA256(
            inputKeyMaterial: secret, salt: key, info: SignalConstants.ratchetInfo, outputByteCount: 64)
        return (RootKey(key: material.subdata(in: 0..<32)), ChainKey(key: material.subdata(in: 32..<64), index: 0))
    }
}
