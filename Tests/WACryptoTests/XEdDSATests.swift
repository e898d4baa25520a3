import Foundation
import WATestSupport
import XCTest
@testable import WACrypto

final class XEdDSATests: XCTestCase {
    private func hex(_ data: Data) -> String { data.map { String(format: "%02x", $0) }.joined() }
    private func unhex(_ s: String) -> Data {
        Data(stride(from: 0, to: s.count, by: 2).map { i in
            UInt8(s[s.index(s.startIndex, offsetBy: i)..<s.index(s.startIndex, offsetBy: i + 2)], radix: 16)!
        })
    }

    func testSignVerifyRoundTripAndTamper() throws {
        let pair = Curve25519KeyPair.generate()
        let message = Data("signed prekey".utf8)
        let signature = try XEdDSA.sign(message, privateKey: pair.privateKey)
        XCTAssertEqual(signature.count, 64)
        XCTAssertTrue(XEdDSA.verify(signature, for: message, publicKey: pair.publicKey))
        XCTAssertFalse(XEdDSA.verify(signature, for: Data("signed prekeY".utf8), publicKey: pair.publicKey))
        XCTAssertFalse(XEdDSA.verify(signature, for: message, publicKey: Curve25519KeyPair.generate().publicKey))
        for index in [0, 31, 32, 62, 63] {
            var bad = signature
            bad[index] ^= index == 63 ? 0x80 : 0x01  // 0x80 in byte 63 flips the carried sign bit
            XCTAssertFalse(XEdDSA.verify(bad, for: message, publicKey: pair.publicKey), "flipped byte \(index)")
        }
        XCTAssertThrowsError(try XEdDSA.checkSignature(signature.prefix(63), for: message, publicKey: pair.publicKey)) {
            XCTAssertEqual(($0 as? WACryptoError)?.code, .badSignature)
        }
    }

    func testBothSignBitsOccur() throws {
        // Half of all keys have an Edwards x with the sign bit set; make sure both paths are exercised.
        var seen = Set<UInt8>()
        for _ in 0..<32 where seen.count < 2 {
            let pair = Curve25519KeyPair.generate()
            let signature = try XEdDSA.sign(Data([1, 2, 3]), privateKey: pair.privateKey)
            XCTAssertTrue(XEdDSA.verify(signature, for: Data([1, 2, 3]), publicKey: pair.publicKey))
            seen.insert(signature[63] & 0x80)
        }
        XCTAssertEqual(seen, [0, 0x80])
    }

    /// The Montgomery base point u = 9 maps to the Ed25519 base point's
    /// y = 4/5 (RFC 7748 section 4.1), whose encoding is 0x58 followed by 0x66s.
    func testMontgomeryToEdwardsKnownAnswer() {
        var nine = [UInt8](repeating: 0, count: 32)
        nine[0] = 9
        let u = FieldElement25519(littleEndianBytes: nine)
        let y = (u - .one) * (u + .one).inverse
        XCTAssertEqual(y.littleEndianBytes, [0x58] + [UInt8](repeating: 0x66, count: 31))
        // Inverse of zero is zero (ref10's convention), and x * (1/x) = 1 otherwise.
        let zero = FieldElement25519(littleEndianBytes: [UInt8](repeating: 0, count: 32))
        XCTAssertEqual(zero.inverse, zero)
        XCTAssertEqual(u * u.inverse, .one)
        // p itself reads as zero; the top bit is ignored like curve25519 does.
        let p = [0xED] + [UInt8](repeating: 0xFF, count: 30) + [0x7F]
        XCTAssertEqual(FieldElement25519(littleEndianBytes: p), zero)
        XCTAssertEqual(FieldElement25519(littleEndianBytes: nine.enumerated().map { $0.offset == 31 ? 0x80 : $0.element }), u)
    }

    func testKeyPairDescriptionHidesPrivateKey() {
        let pair = Curve25519KeyPair.generate()
        let privateHex = hex(pair.privateKey.rawRepresentation)
        XCTAssertFalse(String(describing: pair).contains(privateHex))
        XCTAssertFalse(String(reflecting: pair).contains(privateHex))
        var dumped = ""
        dump(pair, to: &dumped)
        // dump prints Data byte by byte in decimal: only the public key may show its bytes.
        XCTAssertEqual(dumped.components(separatedBy: "rawRepresentation").count - 1, 1, dumped)
        XCTAssertTrue(dumped.contains("Curve25519PrivateKey(redacted)"), dumped)
    }

    func testSignalSerializedForm() throws {
        let pair = Curve25519KeyPair.generate()
        let serialized = pair.publicKey.signalSerialized
        XCTAssertEqual(serialized.count, 33)
        XCTAssertEqual(serialized.first, 0x05)
        XCTAssertEqual(try Curve25519PublicKey(signalSerialized: serialized), pair.publicKey)
        XCTAssertThrowsError(try Curve25519PublicKey(signalSerialized: Data([0x06]) + pair.publicKey.rawRepresentation)) {
            XCTAssertEqual(($0 as? WACryptoError)?.code, .invalidKey)
        }
        XCTAssertThrowsError(try Curve25519PublicKey(rawRepresentation: Data(count: 31)))
    }

    func testPrivateKeysAreClampedAndAgree() throws {
        let key = try Curve25519PrivateKey(rawRepresentation: Data(repeating: 0xFF, count: 32))
        XCTAssertEqual(key.rawRepresentation.first, 0xF8)
        XCTAssertEqual(key.rawRepresentation.last, 0x7F)
        let a = Curve25519KeyPair.generate(), b = Curve25519KeyPair.generate()
        XCTAssertEqual(try a.privateKey.sharedSecret(with: b.publicKey), try b.privateKey.sharedSecret(with: a.publicKey))
        XCTAssertThrowsError(try a.privateKey.sharedSecret(with: Curve25519PublicKey(rawRepresentation: Data(count: 32)))) {
            XCTAssertEqual(($0 as? WACryptoError)?.code, .weakSharedSecret)
        }
    }

    /// libsignal's C code (via python-axolotl-curve25519) and ours produce the
    /// same bytes from the same key, message and random; each verifies the other.
    func testInteropWithLibsignalC() throws {
        let peer = try PythonPeer(venv: "axolotl", script: "xeddsa_peer.py")
        for round in 0..<24 {
            let pair = Curve25519KeyPair.generate()
            let message = Symmetric.randomBytes(round * 7)
            let random = Symmetric.randomBytes(64)

            let pub = try peer.request(["op": "pub", "priv": hex(pair.privateKey.rawRepresentation)])
            XCTAssertEqual(pub["pub"] as? String, hex(pair.publicKey.rawRepresentation))

            let ours = try XEdDSA.sign(message, privateKey: pair.privateKey, random: random)
            let theirs = try peer.request([
                "op": "sign", "priv": hex(pair.privateKey.rawRepresentation), "msg": hex(message), "random": hex(random),
            ])
            XCTAssertEqual(theirs["sig"] as? String, hex(ours), "same inputs, same signature bytes")

            let pythonSignature = unhex(theirs["sig"] as? String ?? "")
            XCTAssertTrue(XEdDSA.verify(pythonSignature, for: message, publicKey: pair.publicKey))

            let fresh = try XEdDSA.sign(message, privateKey: pair.privateKey)
            let verdict = try peer.request([
                "op": "verify", "pub": hex(pair.publicKey.rawRepresentation), "msg": hex(message), "sig": hex(fresh),
            ])
            XCTAssertEqual(verdict["valid"] as? Bool, true)

            var forged = fresh
            forged[5] ^= 0x40
            let rejected = try peer.request([
                "op": "verify", "pub": hex(pair.publicKey.rawRepresentation), "msg": hex(message), "sig": hex(forged),
            ])
            XCTAssertEqual(rejected["valid"] as? Bool, false)
        }
        try peer.finish()
    }
}
