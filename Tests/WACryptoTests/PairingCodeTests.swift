import Foundation
import XCTest
@testable import WACrypto

final class PairingCodeTests: XCTestCase {
    func testAlphabetKnownAnswers() throws {
        // First two from the protocol map; the rest cross-checked with Python's
        // base64.b32encode translated to the pairing alphabet.
        let cases: [([UInt8], String)] = [
            ([0, 0, 0, 0, 0], "11111111"),
            ([0xFF, 0xFF, 0xFF, 0xFF, 0xFF], "ZZZZZZZZ"),
            ([0x08, 0x42, 0x10, 0x84, 0x21], "22222222"),
            ([0xDE, 0xAD, 0xBE, 0xEF, 0x01], "VTPVXVR2"),
            ([0x01, 0x23, 0x45, 0x67, 0x89], "15JMBSWA"),
        ]
        for (bytes, code) in cases {
            let encoded = try PairingCode(bytes: bytes)
            XCTAssertEqual(encoded.code, code)
            XCTAssertEqual(try PairingCode(code).bytes, Data(bytes))
        }
        XCTAssertEqual(try PairingCode(bytes: [0xDE, 0xAD, 0xBE, 0xEF, 0x01]).displayed, "VTPV-XVR2")
    }

    func testParsingRejectsForeignCharacters() {
        XCTAssertEqual(try PairingCode("vtpv-xvr2").code, "VTPVXVR2")
        for bad in ["VTPVXVR", "VTPVXVR0", "OTPVXVR2", "UTPVXVR2", "ITPVXVR2", "VTPVXVR22"] {
            XCTAssertThrowsError(try PairingCode(bad)) {
                XCTAssertEqual(($0 as? WACryptoError)?.code, .invalidPairingCode)
            }
        }
    }

    /// Wrapped key computed independently with Python's hashlib.pbkdf2_hmac and
    /// cryptography's AES-CTR: salt = 00..1f, iv = 64..73, key = c8..e7, code 7KQ2M9XZ.
    func testWrapKnownAnswer() throws {
        let code = try PairingCode("7KQ2-M9XZ")
        let salt = Data(0..<32), iv = Data(100..<116)
        let pub = try Curve25519PublicKey(rawRepresentation: Data(200..<232))
        XCTAssertEqual(
            try code.wrappingKey(salt: salt).map { String(format: "%02x", $0) }.joined(),
            "fcfea843abbbb297b9a3baa54848ef4d062414d1ef9fe11fd028ea459bc5de0c")
        let wrapped = try code.wrap(pub, salt: salt, iv: iv)
        XCTAssertEqual(
            wrapped.suffix(32).map { String(format: "%02x", $0) }.joined(),
            "2dadb510360c231e98d7bf536f4321245a3274c6176de42624e0fb4a090e78a3")
        XCTAssertEqual(wrapped.prefix(48), salt + iv)
        XCTAssertEqual(try code.unwrap(wrapped), pub)
        XCTAssertNotEqual(try PairingCode("7KQ2M9XY").unwrap(wrapped), pub)
    }

    func testKeyBundleOpensWithDerivedKey() throws {
        let companion = Curve25519KeyPair.generate(), primary = Curve25519KeyPair.generate()
        let secret = try companion.privateKey.sharedSecret(with: primary.publicKey)
        let salt = Symmetric.randomBytes(32), nonce = Symmetric.randomBytes(12), advRandom = Symmetric.randomBytes(32)
        let bundle = try PairingCode.wrapKeyBundle(
            ephemeralSharedSecret: secret, ownIdentity: companion.publicKey, primaryIdentity: primary.publicKey,
            advRandom: advRandom, salt: salt, nonce: nonce)
        // What the phone does: same HKDF from its side of the DH.
        let phoneSecret = try primary.privateKey.sharedSecret(with: companion.publicKey)
        let key = Symmetric.hkdfSHA256(
            inputKeyMaterial: phoneSecret, salt: salt,
            info: Data("link_code_pairing_key_bundle_encryption_key".utf8), outputByteCount: 32)
        let opened = try Symmetric.aesGCMOpen(bundle.dropFirst(44), key: key, nonce: nonce)
        XCTAssertEqual(opened, companion.publicKey.rawRepresentation + primary.publicKey.rawRepresentation + advRandom)
        XCTAssertEqual(PairingCode.advSecret(ephemeralSharedSecret: secret, identitySharedSecret: secret, advRandom: advRandom).count, 32)
    }
}
