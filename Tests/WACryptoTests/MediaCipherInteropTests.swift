import Foundation
import WATestSupport
import XCTest
@testable import WACrypto

/// Media blobs against an independent implementation in Python
/// (`cryptography`; venv `.venv-peers/noise`, which lists it).
final class MediaCipherInteropTests: XCTestCase {
    private func hex(_ data: Data) -> String { data.map { String(format: "%02x", $0) }.joined() }
    private func unhex(_ s: String) -> Data {
        Data(stride(from: 0, to: s.count, by: 2).map { i in
            UInt8(s[s.index(s.startIndex, offsetBy: i)..<s.index(s.startIndex, offsetBy: i + 2)], radix: 16)!
        })
    }

    func testBlobsInteropWithPython() throws {
        let peer = try PythonPeer(venv: "noise", script: "media_peer.py")
        for (round, type) in MediaKeys.MediaType.allCases.enumerated() {
            let mediaKey = Symmetric.randomBytes(32)
            let keys = MediaKeys(mediaKey: mediaKey, type: type)
            let plaintext = Symmetric.randomBytes(round * 37)

            let ours = try MediaCipher.encrypt(plaintext, keys: keys)
            let decrypted = try peer.request(["op": "decrypt", "key": hex(mediaKey), "info": type.rawValue, "blob": hex(ours)])
            XCTAssertEqual(decrypted["data"] as? String, hex(plaintext), type.rawValue)

            let theirs = try peer.request(["op": "encrypt", "key": hex(mediaKey), "info": type.rawValue, "data": hex(plaintext)])
            let blob = unhex(theirs["blob"] as? String ?? "")
            XCTAssertEqual(blob, ours, "CBC with the derived IV is deterministic: same bytes")
            XCTAssertEqual(try MediaCipher.decrypt(blob, keys: keys), plaintext)

            var tampered = ours
            tampered[0] ^= 1
            let refused = try peer.request(["op": "decrypt", "key": hex(mediaKey), "info": type.rawValue, "blob": hex(tampered)])
            XCTAssertEqual(refused["error"] as? String, "bad_mac")
        }
        try peer.finish()
    }
}
