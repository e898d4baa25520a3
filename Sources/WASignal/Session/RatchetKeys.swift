import Foundation
import WACrypto

/// The keys of one message: AES-256-CBC key and IV, and the HMAC key of the
/// 8-byte MAC. `counter` is the message's position in its chain.
struct MessageKeys: Sendable {
    var cipherKey: Data
    var macKey: Data
    var iv: Data
    var counter: UInt32
}

/// A symmetric chain (sending or receiving): each step gives one message's
/// keys and the next chain key, so old keys cannot be recomputed from new ones.
struct ChainKey: Sendable {
    var key: Data
    var index: UInt32

    static let messageKeySeedByte = Data([0x01])
    static let chainKeySeedByte = Data([0x02])

    var next: ChainKey { ChainKey(key: Symmetric.hmacSHA256(key: key, Self.chainKeySeedByte), index: index + 1) }

    var messageKeys: MessageKeys {
        let seed = Symmetric.hmacSHA256(key: key, Self.messageKeySeedByte)
        let material = Symmetric.hkdfSHA256(
            inputKeyMaterial: seed, info: SignalConstants.messageKeysInfo, outputByteCount: 80)
        return MessageKeys(
            cipherKey: material.subdata(in: 0..<32), macKey: material.subdata(in: 32..<64),
            iv: material.subdata(in: 64..<80), counter: index)
    }
}

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

/// Numbers and labels of libsignal v3 that both ends must agree on, and the
/// bounds we chose for state kept on behalf of a peer.
enum SignalConstants {
    /// Protocol version 3 in both nibbles: the first byte of every v3 message.
    static let currentVersion: UInt8 = 3
    static let versionByte: UInt8 = (3 << 4) | 3
    static let macLength = 8
    static let signatureLength = 64

    static let textInfo = Data("WhisperText".utf8)
    static let ratchetInfo = Data("WhisperRatchet".utf8)
    static let messageKeysInfo = Data("WhisperMessageKeys".utf8)
    static let groupInfo = Data("WhisperGroup".utf8)

    /// How far ahead of the chain a counter may be (keys derived and kept for
    /// the skipped ones). libsignal's figure; larger jumps are refused so a
    /// forged counter cannot make us derive millions of keys.
    static let maxForwardJump: UInt32 = 2000
    /// Skipped message keys kept per chain (1:1) or per sender key state
    /// (groups); the oldest are dropped first.
    static let maxSkippedKeysPerChain = 2000
    /// Receiving chains kept per session state (older peers' ratchet keys).
    static let maxReceiverChains = 5
    /// Archived session states kept per address, so a late message under an
    /// older session still decrypts.
    static let maxArchivedStates = 40
    /// Sender key states kept per group sender (its key rotations).
    static let maxSenderKeyStates = 5

    static func agree(_ ours: Curve25519PrivateKey, _ theirs: Curve25519PublicKey) throws -> Data {
        do { return try ours.sharedSecret(with: theirs) } catch {
            throw SignalError(.invalidKey, "Diffie-Hellman with the peer's key failed (low-order point)")
        }
    }
}
