import Foundation
import WACrypto

/// Noise's SymmetricState (h, ck, k, n) as WhatsApp runs it for
/// `Noise_XX_25519_AESGCM_SHA256`.
///
/// WhatsApp's differences from the Noise spec, kept here and only here:
/// - The protocol name plus 4 NUL bytes is exactly 32 bytes and is used as h
///   and ck directly (the spec pads names shorter than HASHLEN the same way).
/// - A payload is mixed into h only by `encryptAndHash`/`decryptAndHash`
///   once a key exists: the empty payload of the first message is never
///   hashed (the spec would MixHash it).
/// - The AES-GCM nonce is 8 zero bytes + a big-endian UInt32 counter (equal
///   to the spec's 4 zero bytes + UInt64 for any counter below 2^32).
struct NoiseSymmetricState: Sendable {
    static let protocolName = Data("Noise_XX_25519_AESGCM_SHA256".utf8) + Data(count: 4)

    private(set) var handshakeHash: Data
    private var chainingKey: Data
    private var key: Data?
    private var counter: UInt32 = 0

    init(prologue: Data) {
        handshakeHash = Self.protocolName
        chainingKey = Self.protocolName
        mixHash(prologue)
    }

    mutating func mixHash(_ data: some DataProtocol) {
        handshakeHash = Symmetric.sha256(handshakeHash + Data(data))
    }

    /// ck, k = HKDF(ck, dh); the nonce counter restarts.
    mutating func mixKey(_ inputKeyMaterial: Data) {
        let output = Symmetric.hkdfSHA256(inputKeyMaterial: inputKeyMaterial, salt: chainingKey, outputByteCount: 64)
        chainingKey = output.prefix(32)
        key = output.suffix(32)
        counter = 0
    }

    /// MixKey(DH(private, public)) with DH failures mapped to our error.
    mutating func mixKey(dh privateKey: Curve25519PrivateKey, _ publicKey: Curve25519PublicKey) throws {
        do {
            mixKey(try privateKey.sharedSecret(with: publicKey))
        } catch let error as WACryptoError {
            throw WAClientError(.keyAgreementFailed, "Noise DH failed", underlying: error.code)
        }
    }

    mutating func encryptAndHash(_ plaintext: some DataProtocol) throws -> Data {
        guard let key else { throw WAClientError(.invalidState, "encrypt before any key was mixed in") }
        let ciphertext = try Symmetric.aesGCMSeal(
            plaintext, key: key, nonce: Self.nonce(counter), additionalData: handshakeHash)
        counter += 1
        mixHash(ciphertext)
        return ciphertext
    }

    mutating func decryptAndHash(_ ciphertext: some DataProtocol) throws -> Data {
        guard let key else { throw WAClientError(.invalidState, "decrypt before any key was mixed in") }
        let plaintext: Data
        do {
            plaintext = try Symmetric.aesGCMOpen(
                ciphertext, key: key, nonce: Self.nonce(counter), additionalData: handshakeHash)
        } catch let error as WACryptoError {
            throw WAClientError(.decryptFailed, "handshake message did not decrypt", underlying: error.code)
        }
        counter += 1
        mixHash(ciphertext)
        return plaintext
    }

    /// The two transport keys: (initiator→responder, responder→initiator).
    func split() -> (initiatorToResponder: Data, responderToInitiator: Data) {
        let output = Symmetric.hkdfSHA256(inputKeyMaterial: Data(), salt: chainingKey, outputByteCount: 64)
        return (output.prefix(32), output.suffix(32))
    }

    static func nonce(_ counter: UInt32) -> Data {
        Data(count: 8) + Data([
            UInt8(truncatingIfNeeded: counter >> 24), UInt8(truncatingIfNeeded: counter >> 16),
            UInt8(truncatingIfNeeded: counter >> 8), UInt8(truncatingIfNeeded: counter),
        ])
    }
}
