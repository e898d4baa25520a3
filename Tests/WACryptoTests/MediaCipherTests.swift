import Foundation
import XCTest
@testable import WACrypto

final class MediaCipherTests: XCTestCase {
    /// Known answer from whatsmeow's old crypto/hkdf test (see the protocol map).
    func testMediaKeyHKDFKnownAnswer() throws {
        let expected = Data(base64Encoded:
            "P223XLP+ocURAtdHfZYjoQ7IoHQL+eH4yKIVklTfv9q6F/f70wGj5kNPUcEtX1jcIHmsUQUrVGdRCs2DRScgxGyqOcDbzaenRbLkcrvp1upO/wi1iaIuG3MTvdnfuULtJX9LKfkBMrXT683j+twJ2A==")!
        let keys = MediaKeys(mediaKey: Data("Hallo ich bin Marcel".utf8), type: .image)
        XCTAssertEqual(keys.iv + keys.cipherKey + keys.macKey + keys.refKey, expected)
        XCTAssertEqual(keys.iv, expected.prefix(16))
        XCTAssertEqual(keys.refKey, expected.suffix(32))
    }

    func testInfoStringsPerType() {
        XCTAssertEqual(MediaKeys.MediaType.appState.rawValue, "WhatsApp App State Keys")
        let key = Data(repeating: 7, count: 32)
        let image = MediaKeys(mediaKey: key, type: .image), video = MediaKeys(mediaKey: key, type: .video)
        XCTAssertNotEqual(image.cipherKey, video.cipherKey)
    }

    func testRoundTripAndLayout() throws {
        let keys = MediaKeys(mediaKey: Symmetric.randomBytes(32), type: .document)
        for size in [0, 1, 15, 16, 17, 1000] {
            let plaintext = Symmetric.randomBytes(size)
            let blob = try MediaCipher.encrypt(plaintext, keys: keys)
            XCTAssertEqual(blob.count, (size / 16 + 1) * 16 + 10, "PKCS7 pads to the next block, MAC adds 10")
            let mac = Symmetric.hmacSHA256(key: keys.macKey, keys.iv + blob.prefix(blob.count - 10)).prefix(10)
            XCTAssertEqual(blob.suffix(10), mac)
            XCTAssertEqual(try MediaCipher.decrypt(blob, keys: keys), plaintext)
        }
    }

    func testTamperedBlobFailsWithBadMAC() throws {
        let keys = MediaKeys(mediaKey: Symmetric.randomBytes(32), type: .audio)
        let blob = try MediaCipher.encrypt(Data("voice note".utf8), keys: keys)
        for index in [0, blob.count - 11, blob.count - 1] {
            var tampered = blob
            tampered[index] ^= 0x01
            XCTAssertThrowsError(try MediaCipher.decrypt(tampered, keys: keys)) { error in
                XCTAssertEqual((error as? WACryptoError)?.code, .badMAC)
            }
        }
        let otherKeys = MediaKeys(mediaKey: Symmetric.randomBytes(32), type: .audio)
        XCTAssertThrowsError(try MediaCipher.decrypt(blob, keys: otherKeys)) { error in
            XCTAssertEqual((error as? WACryptoError)?.code, .badMAC)
        }
        XCTAssertThrowsError(try MediaCipher.decrypt(blob.prefix(20), keys: keys)) { error in
            XCTAssertEqual((error as? WACryptoError)?.code, .invalidLength)
        }
    }

    func testKeysAreNotPrinted() {
        let keys = MediaKeys(mediaKey: Data(repeating: 1, count: 32), type: .image)
        XCTAssertEqual(String(describing: keys), "MediaKeys(redacted)")
        let privateKey = Curve25519PrivateKey.generate()
        XCTAssertFalse(String(describing: privateKey).contains(privateKey.rawRepresentation.map { String(format: "%02x", $0) }.joined()))
        var dumped = ""
        dump(privateKey, to: &dumped)
        XCTAssertFalse(dumped.contains("rawRepresentation"))
    }
}
