import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import NIOCore
import WABinary
import WAClient
import WASim
import XCTest

/// The loopback HTTP control API drives a full QR login, a fault and an unlink.
final class ControlAPITests: XCTestCase {
    private func request(_ method: String, _ url: URL, json: [String: Any]? = nil) async throws -> (Int, [String: Any]) {
        var request = URLRequest(url: url)
        request.httpMethod = method
        if let json {
            request.httpBody = try JSONSerialization.data(withJSONObject: json)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let (data, response) = try await URLSession.shared.data(for: request)
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        let body = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
        return (status, body)
    }

    func testControlAPIDrivesLoginFaultAndUnlink() async throws {
        let sim = try WASim()
        try await sim.start()
        let (portStream, portSink) = AsyncStream<Int>.makeStream()
        let app = ControlAPI.application(for: sim, port: 0) { channel in
            portSink.yield(channel.localAddress?.port ?? 0)
            portSink.finish()
        }
        let server = Task { try await app.run() }
        var port = 0
        for await p in portStream { port = p }
        XCTAssertGreaterThan(port, 0)
        let base = URL(string: "http://127.0.0.1:\(port)")!

        let (infoStatus, info) = try await request("GET", base.appendingPathComponent("info"))
        XCTAssertEqual(infoStatus, 200)
        XCTAssertEqual(info["rootPublicKey"] as? String, sim.rootPublicKey.rawRepresentation.map { String(format: "%02x", $0) }.joined())

        let (phoneStatus, phone) = try await request("POST", base.appendingPathComponent("phones"), json: ["number": "15558880001"])
        XCTAssertEqual(phoneStatus, 200)
        XCTAssertEqual(phone["number"] as? String, "15558880001")
        let (badStatus, _) = try await request("POST", base.appendingPathComponent("phones"), json: ["number": "abc"])
        XCTAssertEqual(badStatus, 400)

        let store = InMemoryDeviceStore()
        let client = WAClient(store: store, configuration: .local(endpoint: await sim.endpoint, noiseRoot: sim.rootPublicKey))
        var jidText: String?
        for try await event in await client.loginWithQR() {
            switch event {
            case .code(let code) where jidText == nil:
                let (status, body) = try await request(
                    "POST", base.appendingPathComponent("phones/15558880001/scan"), json: ["qr": code.text])
                XCTAssertEqual(status, 200)
                jidText = body["jid"] as? String
            case .code: break
            case .success(let login):
                XCTAssertEqual(login.jid.description, jidText)
            }
        }
        let jid = try XCTUnwrap(jidText)
        let (devicesStatus, devices) = try await request("GET", base.appendingPathComponent("phones/15558880001/devices"))
        XCTAssertEqual(devicesStatus, 200)
        XCTAssertEqual(devices["devices"] as? [String], [jid])

        // A dropped connection through the API: the client reconnects.
        let before = await client.recentTransitions.count
        let (faultStatus, _) = try await request("POST", base.appendingPathComponent("devices/\(jid)/faults"), json: ["kind": "drop"])
        XCTAssertEqual(faultStatus, 204)
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline {
            let transitions = await client.recentTransitions.dropFirst(before)
            if transitions.first?.to == .reconnecting, transitions.last?.to == .connected { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        let reconnected = await client.recentTransitions.dropFirst(before).last?.to
        XCTAssertEqual(reconnected, .connected)

        // Unlink through the API: logged out, keys wiped.
        let (unlinkStatus, _) = try await request("DELETE", base.appendingPathComponent("devices/\(jid)"))
        XCTAssertEqual(unlinkStatus, 204)
        try await client.waitForState(.loggedOut, timeout: .seconds(5))
        let wiped = try await store.loadDevice()
        XCTAssertNil(wiped)

        server.cancel()
        _ = await server.result
        await sim.shutdown()
    }
}
