import Foundation
import WACrypto
import WATestSupport
import XCTest
@testable import WAClient

/// Our Noise against dissononce (a Noise spec implementation in Python, run
/// with WhatsApp's MixHash rule) over pipes, with WhatsApp's framing and
/// HandshakeMessage protobufs on both sides.
final class NoiseInteropTests: XCTestCase {
    private let messages = 6

    func testSwiftInitiatorWithDissononceResponder() throws {
        let issuer = CertChainIssuer()
        let server = Curve25519KeyPair.generate()
        let chain = try issuer.chain(for: server.publicKey)
        let payload = Symmetric.randomBytes(120)
        let peer = try PythonPeer(venv: "noise", script: "noise_peer.py", arguments: [
            "responder", hex(server.privateKey.rawRepresentation), hex(chain), hex(payload), String(messages),
        ])
        var initiator = NoiseInitiator(staticKey: .generate(), clientPayload: payload, verifier: issuer.verifier)
        guard case .send(let hello) = try initiator.start() else { return XCTFail("expected ClientHello") }
        try peer.write(hello)
        var result: NoiseHandshakeResult?
        while result == nil {
            for action in try initiator.receive(try peer.readAvailable()) {
                switch action {
                case .send(let bytes): try peer.write(bytes)
                case .established(let established): result = established
                }
            }
        }
        guard var established = result else { return XCTFail("no session") }
        XCTAssertEqual(established.peerStatic, server.publicKey)
        try echo(&established, peer: peer)
    }

    func testSwiftResponderWithDissononceInitiator() throws {
        let issuer = CertChainIssuer()
        let server = Curve25519KeyPair.generate(), client = Curve25519KeyPair.generate()
        let chain = try issuer.chain(for: server.publicKey)
        let payload = Data("ClientPayload bytes from Python".utf8)
        let peer = try PythonPeer(venv: "noise", script: "noise_peer.py", arguments: [
            "initiator", hex(client.privateKey.rawRepresentation), hex(payload), hex(chain), String(messages),
        ])
        var responder = NoiseResponder(staticKey: server, certificateChain: chain)
        var result: NoiseHandshakeResult?
        while result == nil {
            for action in try responder.receive(try peer.readAvailable()) {
                switch action {
                case .send(let bytes): try peer.write(bytes)
                case .established(let established): result = established
                }
            }
        }
        guard var established = result else { return XCTFail("no session") }
        XCTAssertEqual(established.peerStatic, client.publicKey)
        XCTAssertEqual(established.clientPayload, payload)
        try echo(&established, peer: peer)
    }

    /// Receives the peer's frames (sent merged in one write) and echoes each back.
    private func echo(_ established: inout NoiseHandshakeResult, peer: PythonPeer) throws {
        var received = established.earlyPlaintexts
        while received.count < messages {
            received += try established.session.receive(try peer.readAvailable())
        }
        XCTAssertEqual(received.count, messages)
        XCTAssertTrue(received[0].starts(with: Data("py->swift 0".utf8)))
        for plaintext in received {
            try peer.write(try established.session.seal(Data("echo:".utf8) + plaintext))
        }
        try peer.finish()
    }
}
