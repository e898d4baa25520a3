import CSodium
import Crypto
import Foundation

/// Signatures on Curve25519 keys, byte-compatible with libsignal's
/// `curve_calculate_signature` / `curve_verify_signature` (curve_sigs.c).
///
/// The scheme (libsignal's original "curve25519_sign", the predecessor of the
/// XEdDSA paper's version): the Curve25519 private scalar `a` is used directly
/// as an Ed25519 secret scalar, `A = aB` on Edwards25519 is the matching
/// Ed25519 key, and because a Montgomery key does not carry the sign of the
/// Edwards x-coordinate, the sign bit of `A` travels in the otherwise unused
/// top bit of the signature's last byte.
///
///     r = SHA-512(0xFE ‖ 0xFF×31 ‖ a ‖ M ‖ Z) mod L     (Z = 64 random bytes)
///     R = rB
///     h = SHA-512(R ‖ A ‖ M) mod L
///     S = h·a + r mod L
///     signature = R ‖ S, with S[31] |= sign bit of A
///
/// What is hand-written and why: swift-crypto's Ed25519 only signs with
/// seed-derived keys, so signing uses libsodium's Edwards primitives
/// (`crypto_scalarmult_ed25519_base_noclamp`, `crypto_core_ed25519_scalar_*`)
/// and only the glue above is ours. Verification needs the Edwards y of the
/// Montgomery u, y = (u - 1)/(u + 1), which no library exposes: that field
/// arithmetic is `FieldElement25519`; the Ed25519 check itself is
/// swift-crypto's.
public enum XEdDSA {
    /// libsodium wants `sodium_init` once per process before use; a `let`
    /// global is initialised exactly once, thread-safely.
    private static let sodiumReady: Bool = sodium_init() >= 0

    /// Signs `message` with `privateKey`; `random` must be 64 fresh random
    /// bytes (tests pass fixed bytes to compare with other implementations).
    public static func sign(
        _ message: some DataProtocol, privateKey: Curve25519PrivateKey, random: some DataProtocol
    ) throws -> Data {
        guard random.count == 64 else {
            throw WACryptoError(.invalidLength, "XEdDSA signing needs 64 random bytes, got \(random.count)")
        }
        guard sodiumReady else { throw WACryptoError(.library, "sodium_init failed") }
        let a = [UInt8](privateKey.rawRepresentation)  // clamped by Curve25519PrivateKey
        let msg = [UInt8](message)

        var edPublic = [UInt8](repeating: 0, count: 32)
        guard crypto_scalarmult_ed25519_base_noclamp(&edPublic, a) == 0 else {
            throw WACryptoError(.library, "Ed25519 base multiplication failed")
        }
        let signBit = edPublic[31] & 0x80

        var prefix = [UInt8](repeating: 0xFF, count: 32)
        prefix[0] = 0xFE
        var nonceHash = SHA512()
        nonceHash.update(data: prefix)
        nonceHash.update(data: a)
        nonceHash.update(data: msg)
        nonceHash.update(data: [UInt8](random))
        let r = reduce(Array(nonceHash.finalize()))

        var bigR = [UInt8](repeating: 0, count: 32)
        guard crypto_scalarmult_ed25519_base_noclamp(&bigR, r) == 0 else {
            throw WACryptoError(.library, "Ed25519 nonce multiplication failed")
        }

        var challenge = SHA512()
        challenge.update(data: bigR)
        challenge.update(data: edPublic)
        challenge.update(data: msg)
        let h = reduce(Array(challenge.finalize()))

        // a is 255 bits; reduce it mod L first so the scalar ops see canonical input.
        let aReduced = reduce(a + [UInt8](repeating: 0, count: 32))
        var ha = [UInt8](repeating: 0, count: 32)
        crypto_core_ed25519_scalar_mul(&ha, h, aReduced)
        var s = [UInt8](repeating: 0, count: 32)
        crypto_core_ed25519_scalar_add(&s, ha, r)

        s[31] &= 0x7F
        s[31] |= signBit
        return Data(bigR + s)
    }

    /// Signs with 64 bytes from the system's secure generator.
    public static func sign(_ message: some DataProtocol, privateKey: Curve25519PrivateKey) throws -> Data {
        var random = [UInt8](repeating: 0, count: 64)
        var generator = SystemRandomNumberGenerator()
        for i in random.indices { random[i] = generator.next() }
        return try sign(message, privateKey: privateKey, random: random)
    }

    /// True when `signature` (64 bytes) is valid for `message` under `publicKey`.
    public static func verify(
        _ signature: some DataProtocol, for message: some DataProtocol, publicKey: Curve25519PublicKey
    ) -> Bool {
        guard signature.count == 64 else { return false }
        var sig = [UInt8](signature)
        let u = FieldElement25519(littleEndianBytes: [UInt8](publicKey.rawRepresentation))
        let y = (u - .one) * (u + .one).inverse
        var edPublic = y.littleEndianBytes
        edPublic[31] |= sig[63] & 0x80
        sig[63] &= 0x7F
        guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: edPublic) else { return false }
        return key.isValidSignature(sig, for: Data(message))
    }

    /// Like `verify`, but throws `crypto.bad_signature`.
    public static func checkSignature(
        _ signature: some DataProtocol, for message: some DataProtocol, publicKey: Curve25519PublicKey
    ) throws {
        guard verify(signature, for: message, publicKey: publicKey) else {
            throw WACryptoError(.badSignature, "XEdDSA signature does not verify")
        }
    }

    private static func reduce(_ wide: [UInt8]) -> [UInt8] {
        precondition(wide.count == 64)
        var out = [UInt8](repeating: 0, count: 32)
        crypto_core_ed25519_scalar_reduce(&out, wide)
        return out
    }
}
