import Foundation
import XCTest
@testable import WACrypto

final class SymmetricTests: XCTestCase {
    private func hex(_ s: String) -> Data {
        Data(stride(from: 0, to: s.count, by: 2).map { i in
            UInt8(s[s.index(s.startIndex, offsetBy: i)..<s.index(s.startIndex, offsetBy: i + 2)], radix: 16)!
        })
    }

    /// RFC 5869 test case 1.
    func testHKDFRFC5869Case1() {
        let okm = Symmetric.hkdfSHA256(
            inputKeyMaterial: hex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"), salt: hex("000102030405060708090a0b0c"),
            info: hex("f0f1f2f3f4f5f6f7f8f9"), outputByteCount: 42)
        XCTAssertEqual(okm, hex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"))
    }

    /// RFC 4231 test case 2.
    func testHMACRFC4231Case2() {
        let mac = Symmetric.hmacSHA256(key: Data("Jefe".utf8), Data("what do ya want for nothing?".utf8))
        XCTAssertEqual(mac, hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"))
    }

    func testGCMRoundTripAndTamper() throws {
        let key = Symmetric.randomBytes(32), nonce = Symmetric.randomBytes(12)
        let sealed = try Symmetric.aesGCMSeal(Data("hello".utf8), key: key, nonce: nonce, additionalData: Data("ad".utf8))
        XCTAssertEqual(sealed.count, 5 + 16)
        XCTAssertEqual(try Symmetric.aesGCMOpen(sealed, key: key, nonce: nonce, additionalData: Data("ad".utf8)), Data("hello".utf8))
        XCTAssertThrowsError(try Symmetric.aesGCMOpen(sealed, key: key, nonce: nonce, additionalData: Data("AD".utf8))) {
            XCTAssertEqual(($0 as? WACryptoError)?.code, .badMAC)
        }
        XCTAssertThrowsError(try Symmetric.aesGCMSeal(Data(), key: Data(count: 16), nonce: nonce)) {
            XCTAssertEqual(($0 as? WACryptoError)?.code, .invalidKey)
        }
    }

    func testCBCBadPaddingIsTyped() throws {
        let key = Symmetric.randomBytes(32), iv = Symmetric.randomBytes(16)
        let ct = try Symmetric.aesCBCEncrypt(Data(repeating: 9, count: 16), key: key, iv: iv)
        XCTAssertEqual(ct.count, 32)
        XCTAssertEqual(try Symmetric.aesCBCDecrypt(ct, key: key, iv: iv), Data(repeating: 9, count: 16))
        // Decrypting with another key gives random padding bytes.
        XCTAssertThrowsError(try Symmetric.aesCBCDecrypt(ct, key: Data(repeating: 1, count: 32), iv: iv)) {
            XCTAssertEqual(($0 as? WACryptoError)?.code, .badPadding)
        }
        XCTAssertThrowsError(try Symmetric.aesCBCDecrypt(ct.prefix(31), key: key, iv: iv)) {
            XCTAssertEqual(($0 as? WACryptoError)?.code, .invalidLength)
        }
    }

    /// NIST SP 800-38A F.5.5 (CTR-AES256.Encrypt), first block.
    func testCTRKnownAnswer() throws {
        let out = try Symmetric.aesCTR(
            hex("6bc1bee22e409f96e93d7e117393172a"),
            key: hex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4"),
            iv: hex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"))
        XCTAssertEqual(out, hex("601ec313775789a5b7a7f504bbf3d228"))
    }

    func testConstantTimeEqual() {
        XCTAssertTrue(Symmetric.constantTimeEqual(Data([1, 2, 3]), Data([1, 2, 3])))
        XCTAssertFalse(Symmetric.constantTimeEqual(Data([1, 2, 3]), Data([1, 2, 4])))
        XCTAssertFalse(Symmetric.constantTimeEqual(Data([1, 2, 3]), Data([1, 2])))
    }

    func testErrorCodesAreStable() {
        XCTAssertEqual(WACryptoError.Code.badMAC.rawValue, "crypto.bad_mac")
        XCTAssertEqual(WACryptoError(.badSignature, "x").description, "crypto.bad_signature: x")
    }
}
