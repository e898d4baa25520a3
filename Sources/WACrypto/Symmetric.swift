import Crypto
import Foundation
import _CryptoExtras

/// Thin, typed wrappers over swift-crypto for the primitives WhatsApp uses.
///
/// They exist so callers deal with `Data` in and `Data` out, and with one
/// error type (`WACryptoError`) instead of swift-crypto's several.
public enum Symmetric {
    // MARK: Hashing and key derivation

    public static func sha256(_ data: some DataProtocol) -> Data { Data(SHA256.hash(data: Data(data))) }

    public static func hmacSHA256(key: some DataProtocol, _ data: some DataProtocol) -> Data {
        Data(HMAC<SHA256>.authenticationCode(for: Data(data), using: SymmetricKey(data: Data(key))))
    }

    public static func hmacSHA512(key: some DataProtocol, _ data: some DataProtocol) -> Data {
        Data(HMAC<SHA512>.authenticationCode(for: Data(data), using: SymmetricKey(data: Data(key))))
    }

    /// HKDF-SHA256 (RFC 5869). An empty salt means HashLen zero bytes, as the RFC says.
    public static func hkdfSHA256(
        inputKeyMaterial: some DataProtocol, salt: some DataProtocol = Data(), info: some DataProtocol = Data(),
        outputByteCount: Int
    ) -> Data {
        let key = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: Data(inputKeyMaterial)), salt: Data(salt), info: Data(info),
            outputByteCount: outputByteCount)
        return key.withUnsafeBytes { Data($0) }
    }

    /// PBKDF2-HMAC-SHA256. WhatsApp's pairing code uses 131072 rounds, below
    /// swift-crypto's default floor, so this calls the unchecked-rounds variant.
    public static func pbkdf2SHA256(
        password: some DataProtocol, salt: some DataProtocol, rounds: Int, outputByteCount: Int
    ) throws -> Data {
        do {
            let key = try KDF.Insecure.PBKDF2.deriveKey(
                from: Data(password), salt: Data(salt), using: .sha256, outputByteCount: outputByteCount,
                unsafeUncheckedRounds: rounds)
            return key.withUnsafeBytes { Data($0) }
        } catch {
            throw WACryptoError(.library, "PBKDF2 failed: \(error)")
        }
    }

    // MARK: AES-256-GCM

    /// Returns ciphertext ‖ 16-byte tag (the layout WhatsApp sends).
    public static func aesGCMSeal(
        _ plaintext: some DataProtocol, key: some DataProtocol, nonce: some DataProtocol,
        additionalData: some DataProtocol = Data()
    ) throws -> Data {
        do {
            let box = try AES.GCM.seal(
                Data(plaintext), using: try aesKey(key), nonce: try AES.GCM.Nonce(data: Data(nonce)),
                authenticating: Data(additionalData))
            return box.ciphertext + box.tag
        } catch let error as WACryptoError {
            throw error
        } catch {
            throw WACryptoError(.invalidLength, "AES-GCM nonce must be 12 bytes: \(error)")
        }
    }

    /// Opens ciphertext ‖ tag; a wrong key or altered data throws `crypto.bad_mac`.
    public static func aesGCMOpen(
        _ sealed: some DataProtocol, key: some DataProtocol, nonce: some DataProtocol,
        additionalData: some DataProtocol = Data()
    ) throws -> Data {
        let sealed = Data(sealed)
        guard sealed.count >= 16 else {
            throw WACryptoError(.invalidLength, "AES-GCM input shorter than its 16-byte tag")
        }
        let box: AES.GCM.SealedBox
        do {
            box = try AES.GCM.SealedBox(
                nonce: AES.GCM.Nonce(data: Data(nonce)), ciphertext: sealed.prefix(sealed.count - 16),
                tag: sealed.suffix(16))
        } catch {
            throw WACryptoError(.invalidLength, "AES-GCM nonce must be 12 bytes")
        }
        do {
            return try AES.GCM.open(box, using: try aesKey(key), authenticating: Data(additionalData))
        } catch let error as WACryptoError {
            throw error
        } catch {
            throw WACryptoError(.badMAC, "AES-GCM authentication failed")
        }
    }

    // MARK: AES-256-CBC with PKCS#7 padding

    public static func aesCBCEncrypt(_ plaintext: some DataProtocol, key: some DataProtocol, iv: some DataProtocol) throws -> Data {
        let iv = try cbcIV(iv)
        do {
            return try AES._CBC.encrypt(Data(plaintext), using: try aesKey(key), iv: iv)
        } catch let error as WACryptoError {
            throw error
        } catch {
            throw WACryptoError(.library, "AES-CBC encryption failed: \(error)")
        }
    }

    public static func aesCBCDecrypt(_ ciphertext: some DataProtocol, key: some DataProtocol, iv: some DataProtocol) throws -> Data {
        let iv = try cbcIV(iv)
        guard ciphertext.count > 0, ciphertext.count % 16 == 0 else {
            throw WACryptoError(.invalidLength, "AES-CBC ciphertext must be a non-empty multiple of 16 bytes")
        }
        do {
            return try AES._CBC.decrypt(Data(ciphertext), using: try aesKey(key), iv: iv)
        } catch let error as WACryptoError {
            throw error
        } catch {
            throw WACryptoError(.badPadding, "AES-CBC padding is not valid PKCS#7")
        }
    }

    // MARK: AES-256-CTR (128-bit big-endian counter block = the 16-byte IV)

    public static func aesCTR(_ data: some DataProtocol, key: some DataProtocol, iv: some DataProtocol) throws -> Data {
        guard iv.count == 16 else {
            throw WACryptoError(.invalidLength, "AES-CTR IV must be 16 bytes, got \(iv.count)")
        }
        do {
            return try AES._CTR.encrypt(Data(data), using: try aesKey(key), nonce: AES._CTR.Nonce(nonceBytes: Data(iv)))
        } catch let error as WACryptoError {
            throw error
        } catch {
            throw WACryptoError(.library, "AES-CTR failed: \(error)")
        }
    }

    // MARK: Helpers

    /// Compares in time that depends only on the lengths, not on where bytes differ.
    public static func constantTimeEqual(_ a: some DataProtocol, _ b: some DataProtocol) -> Bool {
        let a = [UInt8](a), b = [UInt8](b)
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in a.indices { diff |= a[i] ^ b[i] }
        return diff == 0
    }

    public static func randomBytes(_ count: Int) -> Data {
        var generator = SystemRandomNumberGenerator()
        return Data((0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) })
    }

    private static func aesKey(_ key: some DataProtocol) throws -> SymmetricKey {
        guard key.count == 32 else {
            throw WACryptoError(.invalidKey, "AES-256 key must be 32 bytes, got \(key.count)")
        }
        return SymmetricKey(data: Data(key))
    }

    private static func cbcIV(_ iv: some DataProtocol) throws -> AES._CBC.IV {
        guard iv.count == 16, let value = try? AES._CBC.IV(ivBytes: [UInt8](iv)) else {
            throw WACryptoError(.invalidLength, "AES-CBC IV must be 16 bytes, got \(iv.count)")
        }
        return value
    }
}
