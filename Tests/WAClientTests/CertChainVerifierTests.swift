import Foundation
import WACrypto
import WAProto
import XCTest
@testable import WAClient

final class CertChainVerifierTests: XCTestCase {
    /// A real WhatsApp Noise certificate chain as captured from the server
    /// (published as WHATSAPP_NOISE_CERT_CHAIN in openclaw/crabline,
    /// src/servers/whatsapp-baileys-websocket.ts). Intermediate: serial 3,
    /// issuerSerial 0, 2025-03-08 … 2027-03-07; leaf: serial 355, issuerSerial 3,
    /// 2026-03-23 21:00 … 2026-07-27 21:00 UTC.
    static let capturedChain = Data(base64Encoded:
        "CncKMwjjAhADGiCRKg7Kg1iu4CSulwLBaxX51Tefw6VXGgZqcr5OEbXIRiDQ04bOBijQjZ/TBhJA34Bj82jAHhLpCWBNVBlGnFDieamd8+138S57uMt9ke9mrn5r4+VepwBPKEgHjob6bR70rlCmWDkxZv+CfVjIAxJ2CjIIAxAAGiAcUamsMDmUxsjQuS6hh4pTNHZZnMWZ++o1mX2aqQzOYiCAka6+Bij/3rfcBhJAJw8pRkhTn+1IcOJQVN1OlZg6uikYnCumyO7acFVVX3U3QPXsGSq2TCbCbWrebSC593Su43EgprIDlfU8ZgWFBw==")!
    /// The leaf's key: the server static key that chain certified.
    static let capturedLeafKey = try! Curve25519PublicKey(rawRepresentation: Data([
        0x91, 0x2a, 0x0e, 0xca, 0x83, 0x58, 0xae, 0xe0, 0x24, 0xae, 0x97, 0x02, 0xc1, 0x6b, 0x15, 0xf9,
        0xd5, 0x37, 0x9f, 0xc3, 0xa5, 0x57, 0x1a, 0x06, 0x6a, 0x72, 0xbe, 0x4e, 0x11, 0xb5, 0xc8, 0x46,
    ]))
    /// 2026-05-28, inside the leaf's window.
    static let insideWindow = Date(timeIntervalSince1970: 1_780_000_000)

    func testRealChainVerifiesUnderWhatsAppRoot() throws {
        XCTAssertEqual(hex(CertChainVerifier.whatsAppRootKey.rawRepresentation),
                       "142375574d0a587166aae71ebe516437c4a28b73e3695c6ce1f7f9545da8ee6b")
        let verified = try CertChainVerifier.whatsApp.verify(
            Self.capturedChain, serverStatic: Self.capturedLeafKey, now: Self.insideWindow)
        XCTAssertEqual(verified.intermediateSerial, 3)
        XCTAssertEqual(verified.leafSerial, 355)
    }

    func testEveryFlippedSignatureOrKeyByteFails() throws {
        let chain = try WACert_CertChain(serializedBytes: Self.capturedChain)
        // One byte of each signature, and one byte of each certified key (inside the signed details).
        let mutations: [(String, (inout WACert_CertChain) -> Void)] = [
            ("intermediate signature", { $0.intermediate.signature[10] ^= 0x01 }),
            ("intermediate signature sign bit", { $0.intermediate.signature[63] ^= 0x80 }),
            ("leaf signature", { $0.leaf.signature[40] ^= 0x01 }),
            ("intermediate key", { c in
                var d = try! WACert_CertChain.NoiseCertificate.Details(serializedBytes: c.intermediate.details)
                d.key[0] ^= 0x01
                c.intermediate.details = try! d.serializedBytes()
            }),
            ("leaf key", { c in
                var d = try! WACert_CertChain.NoiseCertificate.Details(serializedBytes: c.leaf.details)
                d.key[31] ^= 0x01
                c.leaf.details = try! d.serializedBytes()
            }),
        ]
        for (name, mutate) in mutations {
            var altered = chain
            mutate(&altered)
            XCTAssertThrowsError(
                try CertChainVerifier.whatsApp.verify(
                    try altered.serializedBytes(), serverStatic: Self.capturedLeafKey, now: Self.insideWindow), name
            ) { XCTAssertEqual(($0 as? WAClientError)?.code, .certBadSignature, name) }
        }
        var flippedRoot = CertChainVerifier.whatsAppRootKey.rawRepresentation
        flippedRoot[5] ^= 0x01
        XCTAssertThrowsError(
            try CertChainVerifier(trustRoot: Curve25519PublicKey(rawRepresentation: flippedRoot)).verify(
                Self.capturedChain, serverStatic: Self.capturedLeafKey, now: Self.insideWindow)
        ) { XCTAssertEqual(($0 as? WAClientError)?.code, .certBadSignature) }
    }

    func testRealChainChecksStaticKeyAndTime() {
        XCTAssertThrowsError(try CertChainVerifier.whatsApp.verify(
            Self.capturedChain, serverStatic: Curve25519KeyPair.generate().publicKey, now: Self.insideWindow)
        ) { XCTAssertEqual(($0 as? WAClientError)?.code, .certKeyMismatch) }
        for outside in [1_774_000_000.0, 1_785_186_001.0] {
            XCTAssertThrowsError(try CertChainVerifier.whatsApp.verify(
                Self.capturedChain, serverStatic: Self.capturedLeafKey, now: Date(timeIntervalSince1970: outside))
            ) { XCTAssertEqual(($0 as? WAClientError)?.code, .certExpired) }
        }
    }

    func testIssuedChainsAndIssuerSerials() throws {
        let issuer = CertChainIssuer()
        let server = Curve25519KeyPair.generate()
        let chain = try issuer.chain(for: server.publicKey)
        XCTAssertNoThrow(try issuer.verifier.verify(chain, serverStatic: server.publicKey, now: Date()))
        XCTAssertThrowsError(try CertChainVerifier.whatsApp.verify(chain, serverStatic: server.publicKey, now: Date())) {
            XCTAssertEqual(($0 as? WAClientError)?.code, .certBadSignature)
        }
        // A leaf that names another issuer serial, correctly signed, is still refused.
        var parsed = try WACert_CertChain(serializedBytes: chain)
        var leaf = try WACert_CertChain.NoiseCertificate.Details(serializedBytes: parsed.leaf.details)
        leaf.issuerSerial = 99
        parsed.leaf.details = try leaf.serializedBytes()
        parsed.leaf.signature = try XEdDSA.sign(parsed.leaf.details, privateKey: issuer.intermediate.privateKey)
        XCTAssertThrowsError(try issuer.verifier.verify(try parsed.serializedBytes(), serverStatic: server.publicKey, now: Date())) {
            XCTAssertEqual(($0 as? WAClientError)?.code, .certIssuerMismatch)
        }
        // A correctly signed leaf without notAfter is not open-ended: it is expired.
        var openEnded = try WACert_CertChain(serializedBytes: chain)
        var openLeaf = try WACert_CertChain.NoiseCertificate.Details(serializedBytes: openEnded.leaf.details)
        openLeaf.clearNotAfter()
        openEnded.leaf.details = try openLeaf.serializedBytes()
        openEnded.leaf.signature = try XEdDSA.sign(openEnded.leaf.details, privateKey: issuer.intermediate.privateKey)
        XCTAssertThrowsError(try issuer.verifier.verify(try openEnded.serializedBytes(), serverStatic: server.publicKey, now: Date())) {
            XCTAssertEqual(($0 as? WAClientError)?.code, .certExpired)
        }
        XCTAssertThrowsError(try issuer.verifier.verify(Data([0xFF, 0x01]), serverStatic: server.publicKey, now: Date())) {
            XCTAssertEqual(($0 as? WAClientError)?.code, .certMalformed)
        }
    }
}
