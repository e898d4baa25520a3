import Foundation

/// The 8-character code a user types on the phone to link a companion
/// without a QR code, and the key derivations that hang off it.
///
/// The code is 5 random bytes written 5 bits at a time (big-endian) in a
/// 32-letter alphabet without 0, I, O and U. It protects each side's
/// ephemeral public key: salt32 ‖ iv16 ‖ AES-256-CTR(PBKDF2-SHA256(code,
/// salt, 131072 rounds, 32 bytes), iv, pub32).
public struct PairingCode: Sendable, Hashable, CustomStringConvertible {
    public static let alphabet = Array("123456789ABCDEFGHJKLMNPQRSTVWXYZ")
    public static let pbkdf2Rounds = 131_072
    static let keyBundleInfo = Data("link_code_pairing_key_bundle_encryption_key".utf8)
    static let advSecretInfo = Data("adv_secret".utf8)

    /// The 8 characters, without the dash.
    public let code: String

    /// Encodes 5 bytes.
    public init(bytes: some DataProtocol) throws {
        guard bytes.count == 5 else {
            throw WACryptoError(.invalidLength, "a pairing code encodes 5 bytes, got \(bytes.count)")
        }
        let value = bytes.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        code = String((0..<8).map { i in Self.alphabet[Int((value >> UInt64(35 - 5 * i)) & 31)] })
    }

    /// Parses a code as shown (`XXXX-XXXX`) or typed (any case, dash optional).
    public init(_ text: String) throws {
        let cleaned = text.uppercased().filter { $0 != "-" }
        guard cleaned.count == 8, cleaned.allSatisfy({ Self.alphabet.contains($0) }) else {
            throw WACryptoError(.invalidPairingCode, "pairing code must be 8 characters of the pairing alphabet")
        }
        code = cleaned
    }

    /// A new random code.
    public static func random() -> PairingCode { try! PairingCode(bytes: Symmetric.randomBytes(5)) }

    /// The 5 bytes the code encodes.
    public var bytes: Data {
        let value = code.reduce(UInt64(0)) { acc, ch in acc << 5 | UInt64(Self.alphabet.firstIndex(of: ch)!) }
        return Data((0..<5).map { UInt8((value >> UInt64(32 - 8 * $0)) & 0xFF) })
    }

    /// How the phone shows it: `XXXX-XXXX`.
    public var displayed: String { "\(code.prefix(4))-\(code.suffix(4))" }
    public var description: String { displayed }

    /// PBKDF2-SHA256(code, salt, 131072 rounds) → 32-byte AES key.
    public func wrappingKey(salt: some DataProtocol) throws -> Data {
        try Symmetric.pbkdf2SHA256(password: Data(code.utf8), salt: salt, rounds: Self.pbkdf2Rounds, outputByteCount: 32)
    }

    /// salt32 ‖ iv16 ‖ AES-256-CTR(key, iv, publicKey): 80 bytes.
    public func wrap(_ publicKey: Curve25519PublicKey, salt: some DataProtocol, iv: some DataProtocol) throws -> Data {
        guard salt.count == 32, iv.count == 16 else {
            throw WACryptoError(.invalidLength, "pairing wrap needs a 32-byte salt and a 16-byte IV")
        }
        let encrypted = try Symmetric.aesCTR(publicKey.rawRepresentation, key: wrappingKey(salt: salt), iv: iv)
        return Data(salt) + Data(iv) + encrypted
    }

    /// Wraps with a fresh random salt and IV.
    public func wrap(_ publicKey: Curve25519PublicKey) throws -> Data {
        try wrap(publicKey, salt: Symmetric.randomBytes(32), iv: Symmetric.randomBytes(16))
    }

    /// Reverses `wrap`. A wrong code yields a different (garbage) key: CTR has no MAC.
    public func unwrap(_ wrapped: some DataProtocol) throws -> Curve25519PublicKey {
        let wrapped = Data(wrapped)
        guard wrapped.count == 80 else {
            throw WACryptoError(.invalidLength, "wrapped pairing key must be 80 bytes, got \(wrapped.count)")
        }
        let salt = wrapped.subdata(in: 0..<32)
        let iv = wrapped.subdata(in: 32..<48)
        let plain = try Symmetric.aesCTR(wrapped.subdata(in: 48..<80), key: wrappingKey(salt: salt), iv: iv)
        return try Curve25519PublicKey(rawRepresentation: plain)
    }

    /// The companion_finish key bundle: salt32 ‖ nonce12 ‖ AES-256-GCM(
    /// HKDF(ephemeralSharedSecret, salt, "link_code_pairing_key_bundle_encryption_key"),
    /// ownIdentity ‖ primaryIdentity ‖ advRandom).
    public static func wrapKeyBundle(
        ephemeralSharedSecret: some DataProtocol, ownIdentity: Curve25519PublicKey,
        primaryIdentity: Curve25519PublicKey, advRandom: some DataProtocol,
        salt: some DataProtocol, nonce: some DataProtocol
    ) throws -> Data {
        guard salt.count == 32, nonce.count == 12, advRandom.count == 32 else {
            throw WACryptoError(.invalidLength, "key bundle needs salt 32, nonce 12 and adv random 32 bytes")
        }
        let key = Symmetric.hkdfSHA256(
            inputKeyMaterial: ephemeralSharedSecret, salt: salt, info: keyBundleInfo, outputByteCount: 32)
        let plaintext = ownIdentity.rawRepresentation + primaryIdentity.rawRepresentation + Data(advRandom)
        return Data(salt) + Data(nonce) + (try Symmetric.aesGCMSeal(plaintext, key: key, nonce: nonce))
    }

    /// adv secret = HKDF(ephemeralSharedSecret ‖ identitySharedSecret ‖ advRandom, no salt, "adv_secret", 32).
    public static func advSecret(
        ephemeralSharedSecret: some DataProtocol, identitySharedSecret: some DataProtocol, advRandom: some DataProtocol
    ) -> Data {
        Symmetric.hkdfSHA256(
            inputKeyMaterial: Data(ephemeralSharedSecret) + Data(identitySharedSecret) + Data(advRandom),
            info: advSecretInfo, outputByteCount: 32)
    }
}
