import Foundation
import WABinary
import WAClient
import WACrypto
import WASim
import XCTest

/// The simulator answers what a real client asks right after login, so none stalls.
final class PostLoginQueryTests: XCTestCase {
    private func iq(_ xmlns: String, _ type: String, _ children: [Node]) -> Node {
        Node("iq", [Attribute("to", .jid(.serverJID)), Attribute("type", .string(type)), Attribute("xmlns", .string(xmlns))],
             content: .nodes(children))
    }

    func testAnswersConnectQueries() async throws {
        let sim = try WASim()
        try await sim.start()
        await sim.createPhone(number: "15559990001")
        let client = WAClient(store: InMemoryDeviceStore(), configuration: .local(endpoint: await sim.endpoint, noiseRoot: sim.rootPublicKey))
        var jid: JID?
        for try await event in await client.loginWithQR() {
            switch event {
            case .code(let code) where jid == nil: jid = try await sim.scanQR(phone: "15559990001", qr: code.text)
            case .code: break
            case .success: break
            }
        }
        let device = try XCTUnwrap(jid)

        // Prekey count, upload (as whatsmeow words it), count again.
        let count = try await client.sendIQ(iq("encrypt", "get", [Node("count")]))
        XCTAssertEqual(count.child("count")?.string("value"), "0")
        XCTAssertEqual(count.jid("from"), .serverJID)
        let keys = (1...3).map { id in
            Node("key", content: .nodes([
                Node("id", content: .bytes([0, 0, UInt8(id)])),
                Node("value", content: .bytes([UInt8](Curve25519KeyPair.generate().publicKey.rawRepresentation))),
            ]))
        }
        let signed = Curve25519KeyPair.generate().publicKey.rawRepresentation
        _ = try await client.sendIQ(iq("encrypt", "set", [
            Node("registration", content: .bytes([0, 0, 1, 2])),
            Node("type", content: .bytes([5])),
            Node("identity", content: .bytes([UInt8](repeating: 9, count: 32))),
            Node("list", content: .nodes(keys)),
            Node("skey", content: .nodes([
                Node("id", content: .bytes([0, 0, 2])),
                Node("value", content: .bytes([UInt8](signed))),
                Node("signature", content: .bytes([UInt8](repeating: 1, count: 64))),
            ])),
        ]))
        let after = try await client.sendIQ(iq("encrypt", "get", [Node("count")]))
        XCTAssertEqual(after.child("count")?.string("value"), "3")
        let stored = await sim.device(device)
        XCTAssertEqual(stored?.preKeys[2].map { $0.count }, 32)
        XCTAssertEqual(stored?.signedPreKey.id, 2)
        XCTAssertEqual(stored?.signedPreKey.key, signed)

        let props = try await client.sendIQ(iq("abt", "get", [Node("props", [Attribute("protocol", "1")])]))
        XCTAssertEqual(props.child("props")?.string("protocol"), "1")
        let media = try await client.sendIQ(iq("w:m", "set", [Node("media_conn")]))
        let conn = try XCTUnwrap(media.child("media_conn"))
        for attribute in ["auth", "ttl", "auth_ttl", "max_buckets"] { XCTAssertNotNil(conn.string(attribute), attribute) }
        XCTAssertNotNil(conn.child("host")?.string("hostname"))
        let passive = try await client.sendIQ(iq("passive", "set", [Node("active")]))
        XCTAssertEqual(passive.string("type"), "result")
        let unknown = try await client.sendIQ(iq("w:something-new", "get", [Node("whatever")]))
        XCTAssertEqual(unknown.string("type"), "result")
        XCTAssertEqual(unknown.children, [])

        // Slow answers: still answered, later.
        await sim.inject(.slowAnswers(.milliseconds(300)), device: device)
        let started = ContinuousClock.now
        _ = try await client.sendIQ(iq("w:p", "get", [Node("ping")]))
        XCTAssertGreaterThanOrEqual(ContinuousClock.now - started, .milliseconds(300))
        // Missing answers: the client's IQ timeout fires with its typed code.
        await sim.inject(.ignorePings(true), device: device)
        do {
            _ = try await client.sendIQ(iq("w:p", "get", [Node("ping")]), timeout: .milliseconds(200))
            XCTFail("an unanswered IQ must time out")
        } catch let error as WAClientError {
            XCTAssertEqual(error.code, .timeout)
        }
        await client.stop()
        await sim.shutdown()
    }
}
