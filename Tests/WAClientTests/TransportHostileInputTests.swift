import Foundation
import WACrypto
import XCTest
@testable import WAClient

/// Random bytes at every entry point that reads from the network: each must
/// either succeed or throw a WAClientError, never trap.
final class TransportHostileInputTests: XCTestCase {
    private var generator = SystemRandomNumberGenerator()

    private func randomData(maxCount: Int) -> Data {
        Data((0..<Int.random(in: 0...maxCount, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }

    private func expectTypedOrSuccess(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) {
        do {
            try body()
        } catch is WAClientError {
        } catch {
            XCTFail("untyped error \(error)", file: file, line: line)
        }
    }

    func testRandomBytesIntoHandshakesAndPayloads() throws {
        let issuer = CertChainIssuer()
        let server = Curve25519KeyPair.generate()
        let chain = try issuer.chain(for: server.publicKey)
        for round in 0..<2000 {
            let junk = randomData(maxCount: 300)
            expectTypedOrSuccess {
                var initiator = NoiseInitiator(staticKey: .generate(), clientPayload: Data(), verifier: issuer.verifier)
                _ = try initiator.start()
                // Half the rounds look like a frame, so the protobuf path is reached.
                _ = try initiator.receive(round.isMultiple(of: 2) ? try FrameCodec.frame(junk) : junk)
            }
            expectTypedOrSuccess {
                var responder = NoiseResponder(staticKey: server, certificateChain: chain)
                _ = try responder.receive(round.isMultiple(of: 2) ? FrameCodec.header + (try FrameCodec.frame(junk)) : junk)
            }
            expectTypedOrSuccess { _ = try TransportPayload.decode(junk, maxInflatedSize: 1 << 16) }
            expectTypedOrSuccess { _ = try CertChainVerifier.whatsApp.verify(junk, serverStatic: server.publicKey, now: Date()) }
        }
    }

    func testRandomFramesIntoEstablishedSession() throws {
        let issuer = CertChainIssuer()
        let server = Curve25519KeyPair.generate()
        var pair = HandshakePair(
            initiator: NoiseInitiator(staticKey: .generate(), clientPayload: Data(), verifier: issuer.verifier),
            responder: NoiseResponder(staticKey: server, certificateChain: try issuer.chain(for: server.publicKey)))
        var (client, _) = try pair.run()
        for _ in 0..<500 {
            expectTypedOrSuccess { _ = try client.session.receive(try FrameCodec.frame(randomData(maxCount: 100))) }
        }
    }
}
