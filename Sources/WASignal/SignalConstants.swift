import Foundation
import WACrypto

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
