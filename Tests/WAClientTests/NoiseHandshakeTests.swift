import Foundation
import WACrypto
import WAProto
import XCTest
@testable import WAClient

final class NoiseHandshakeTests: XCTestCase {
    private func makePair(
        issuer: CertChainIssuer = CertChainIssuer(), verifier: CertChainVerifier? = nil,
        chainFor: Curve25519PublicKey? = nil, payload: Data = Data("client payload".utf8)
    ) throws -> (HandshakePair, Curve25519KeyPair, Curve25519KeyPair) {
        let server = Curve25519KeyPair.generate(), client = Curve25519KeyPair.generate()
        let chain = try issuer.chain(for: chainFor ?? server.publicKey)
        return (HandshakePair(
            initiator: NoiseInitiator(staticKey: client, clientPayload: payload, verifier: verifier ?? issuer.verifier),
            responder: NoiseResponder(staticKey: server, certificateChain: chain)), client, server)
    }

    func testHandshakeAndTransportBothWays() throws {
        var (pair, client, server) = try makePair()
        var (clientSide, serverSide) = try pair.run()
        XCTAssertEqual(clientSide.peerStatic, server.publicKey)
        XCTAssertEqual(serverSide.peerStatic, client.publicKey)
        XCTAssertEqual(serverSide.clientPayload, Data("client payload".utf8))
        for i in 0..<20 {
            let message = Data("node \(i)".utf8)
            XCTAssertEqual(try serverSide.session.receive(try clientSide.session.seal(message)), [message])
            XCTAssertEqual(try clientSide.session.receive(try serverSide.session.seal(message)), [message])
        }
        // Several frames merged into one chunk, then split byte by byte.
        let merged = try (0..<3).map { try serverSide.session.seal(Data([UInt8($0)])) }.reduce(Data(), +)
        var got: [Data] = []
        for byte in merged { got += try clientSide.session.receive([byte]) }
        XCTAssertEqual(got, [Data([0]), Data([1]), Data([2])])
    }

    func testHandshakeBytesByteByByte() throws {
        var (pair, _, _) = try makePair()
        var (clientSide, serverSide) = try pair.run(chunking: { data in data.map { Data([$0]) } })
        XCTAssertEqual(try serverSide.session.receive(try clientSide.session.seal(Data("x".utf8))), [Data("x".utf8)])
    }

    func testFirstMessageLayout() throws {
        var initiator = NoiseInitiator(
            staticKey: .generate(), clientPayload: Data(), ephemeral: try Curve25519KeyPair(
                privateKey: Curve25519PrivateKey(rawRepresentation: Data(repeating: 0x11, count: 32))))
        guard case .send(let bytes) = try initiator.start() else { return XCTFail("expected bytes to send") }
        XCTAssertEqual(bytes.prefix(4), FrameCodec.header)
        var decoder = FrameDecoder()
        let frames = try decoder.feed(bytes.dropFirst(4))
        let message = try WAWa6_HandshakeMessage(serializedBytes: frames[0])
        XCTAssertEqual(message.clientHello.ephemeral.count, 32)
        XCTAssertFalse(message.clientHello.hasStatic)
        XCTAssertThrowsError(try initiator.start()) { XCTAssertEqual(($0 as? WAClientError)?.code, .invalidState) }
    }

    func testTamperedTransportFrameFails() throws {
        var (pair, _, _) = try makePair()
        var (clientSide, serverSide) = try pair.run()
        var frame = try clientSide.session.seal(Data("hello".utf8))
        frame[5] ^= 0x01
        XCTAssertThrowsError(try serverSide.session.receive(frame)) {
            XCTAssertEqual(($0 as? WAClientError)?.code, .decryptFailed)
        }
        // Replaying or skipping a frame also fails: the counter is part of the nonce.
        var (pair2, _, _) = try makePair()
        var (c2, s2) = try pair2.run()
        _ = try c2.session.seal(Data("lost".utf8))
        XCTAssertThrowsError(try s2.session.receive(try c2.session.seal(Data("next".utf8))))
    }

    func testUntrustedOrMismatchedServerIsRefused() throws {
        var (untrusted, _, _) = try makePair(verifier: .whatsApp)
        XCTAssertThrowsError(try untrusted.run()) { XCTAssertEqual(($0 as? WAClientError)?.code, .certBadSignature) }

        var (mismatched, _, _) = try makePair(chainFor: Curve25519KeyPair.generate().publicKey)
        XCTAssertThrowsError(try mismatched.run()) { XCTAssertEqual(($0 as? WAClientError)?.code, .certKeyMismatch) }

        var (expired, _, _) = try makePair()
        XCTAssertThrowsError(try expired.run(now: Date(timeIntervalSinceNow: 7 * 86400))) {
            XCTAssertEqual(($0 as? WAClientError)?.code, .certExpired)
        }
    }

    func testGarbageServerHelloIsTyped() throws {
        var initiator = NoiseInitiator(staticKey: .generate(), clientPayload: Data())
        _ = try initiator.start()
        XCTAssertThrowsError(try initiator.receive(try FrameCodec.frame(Data([0x1A, 0x02, 0x0A, 0x00])))) {
            XCTAssertEqual(($0 as? WAClientError)?.code, .handshakeMalformed)
        }
        // A failed machine stays failed.
        XCTAssertThrowsError(try initiator.receive(Data([0]))) { XCTAssertEqual(($0 as? WAClientError)?.code, .invalidState) }

        var responder = NoiseResponder(staticKey: .generate(), certificateChain: Data())
        XCTAssertThrowsError(try responder.receive(Data("GET / HTTP/1.1".utf8))) {
            XCTAssertEqual(($0 as? WAClientError)?.code, .badHeader)
        }
    }

    /// WhatsApp's deviation, checked directly: after the prologue and the
    /// client's ephemeral, h is SHA-256(SHA-256(name ‖ header) ‖ e) with no
    /// extra MixHash of the empty first payload.
    func testHandshakeHashSkipsEmptyPayload() {
        let name = Data("Noise_XX_25519_AESGCM_SHA256\0\0\0\0".utf8)
        XCTAssertEqual(NoiseSymmetricState.protocolName, name)
        let e = Data(repeating: 7, count: 32)
        var state = NoiseSymmetricState(prologue: FrameCodec.header)
        state.mixHash(e)
        XCTAssertEqual(state.handshakeHash, Symmetric.sha256(Symmetric.sha256(name + FrameCodec.header) + e))
        XCTAssertEqual(NoiseSymmetricState.nonce(0x0102_0304), Data([0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]))
    }
}
