import Foundation

/// Encrypts and decrypts WhatsApp media blobs: AES-256-CBC (PKCS#7) followed
/// by the first 10 bytes of HMAC-SHA256(macKey, iv ‖ ciphertext).
public enum MediaCipher {
    public static let macLength = 10

    /// Returns ciphertext ‖ 10-byte MAC, the bytes that are uploaded.
    public static func encrypt(_ plaintext: some DataProtocol, keys: MediaKeys) throws -> Data {
        let ciphertext = try Symmetric.aesCBCEncrypt(plaintext, key: keys.cipherKey, iv: keys.iv)
        return ciphertext + mac(ciphertext, keys: keys)
    }

    /// Checks the MAC (in constant time) before decrypting; a mismatch throws `crypto.bad_mac`.
    public static func decrypt(_ blob: some DataProtocol, keys: MediaKeys) throws -> Data {
        let blob = Data(blob)
        guard blob.count >= macLength + 16 else {
            throw WACryptoError(.invalidLength, "media blob too short: \(blob.count) bytes")
        }
        let ciphertext = blob.prefix(blob.count - macLength)
        let received = blob.suffix(macLength)
        guard Symmetric.constantTimeEqual(mac(ciphertext, keys: keys), received) else {
            throw WACryptoError(.badMAC, "media MAC does not match")
        }
        return try Symmetric.aesCBCDecrypt(ciphertext, key: keys.cipherKey, iv: keys.iv)
    }

    private static func mac(_ ciphertext: some DataProtocol, keys: MediaKeys) -> Data {
        Symmetric.hmacSHA256(key: keys.macKey, keys.iv + Data(ciphertext)).prefix(macLength)
    }
}
