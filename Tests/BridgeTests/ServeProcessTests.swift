import AMQP
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import WASim
import Synchronization
import XCTest

/// Runs the real `wabridge serve` binary against the test broker and stops
/// it by PID, as an operator's supervisor would.
final class ServeProcessTests: XCTestCase {
    private func binary() throws -> URL {
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [dir, dir.deletingLastPathComponent()] {
            let url = candidate.appendingPathComponent("wabridge")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        // `swift test` runs from the package root with the build folder beside it.
        let fallback = URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(".build/debug/wabridge")
        guard FileManager.default.isExecutableFile(atPath: fallback.path) else {
            throw XCTestError(.failureWhileWaiting, userInfo: [NSLocalizedDescriptionKey: "wabridge binary not found; run swift build first"])
        }
        return fallback
    }

    private func testBrokerURL() throws -> String {
        guard let v = ProcessInfo.processInfo.environment["WABRIDGE_TEST_AMQP_URL"] else {
            throw XCTestError(.failureWhileWaiting, userInfo: [NSLocalizedDescriptionKey: "WABRIDGE_TEST_AMQP_URL unset: run scripts/test.sh"])
        }
        return v
    }

    final class Output: Sendable {
        private let text = Mutex<String>("")
        func append(_ d: Data) { text.withLock { $0 += String(decoding: d, as: UTF8.self) } }
        var value: String { text.withLock { $0 } }

        func wait(for needle: String, timeout: TimeInterval) -> Bool {
            let end = Date().addingTimeInterval(timeout)
            while Date() < end {
                if value.contains(needle) { return true }
                Thread.sleep(forTimeInterval: 0.05)
            }
            return value.contains(needle)
        }
    }

    private func start(env extra: [String: String], dataDir: String? = nil) throws -> (Process, Output) {
        let p = Process()
        p.executableURL = try binary()
        p.arguments = ["serve"]
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("WABRIDGE_") }
        env["WABRIDGE_DATA_DIR"] = dataDir ?? FileManager.default.temporaryDirectory.appendingPathComponent("wabridge-serve-\(UUID().uuidString)").path
        // The admin HTTP listens too: a port of its own per run.
        env["WABRIDGE_ADMIN_PORT"] = String((try? Self.freeLoopbackPort()) ?? Int.random(in: 20000...30000))
        env.merge(extra) { $1 }
        p.environment = env
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        let out = Output()
        err.fileHandleForReading.readabilityHandler = { h in out.append(h.availableData) }
        try p.run()
        return (p, out)
    }

    private func stop(_ p: Process, timeout: TimeInterval = 20) -> Int32? {
        kill(p.processIdentifier, SIGTERM)
        let end = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < end { Thread.sleep(forTimeInterval: 0.05) }
        if p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            return nil
        }
        return p.terminationStatus
    }

    func testServeDeclaresTopologyLogsJSONAndStopsOnSIGTERM() async throws {
        let prefix = "serve\(UUID().uuidString.prefix(6).lowercased())"
        let (p, out) = try start(env: ["WABRIDGE_AMQP_URL": try testBrokerURL(), "WABRIDGE_TOPOLOGY_PREFIX": prefix])
        XCTAssertTrue(out.wait(for: "broker ready", timeout: 30), "no 'broker ready' in: \(out.value)")

        let conn = try await AMQPConnection.connect(try AMQPConfiguration(url: try testBrokerURL(), connectionName: "serve-test"))
        try await conn.declareExchange(AMQPExchangeDeclaration(name: "\(prefix).commands", type: .direct), passive: true)
        try await conn.declareExchange(AMQPExchangeDeclaration(name: "\(prefix).events", type: .topic), passive: true)
        try await conn.declareQueue(AMQPQueueDeclaration(name: "\(prefix).dead"), passive: true)

        XCTAssertEqual(stop(p), 0, "graceful stop must exit 0")
        XCTAssertTrue(out.value.contains("wabridge stopped"))
        for line in out.value.split(separator: "\n") {
            XCTAssertNotNil(try? JSONSerialization.jsonObject(with: Data(line.utf8)), "not JSON: \(line)")
            XCTAssertFalse(line.contains("guest:guest"), "credentials leaked: \(line)")
        }
        for name in ["commands", "events", "dead"] { try? await conn.deleteExchange("\(prefix).\(name)") }
        try await conn.deleteQueue("\(prefix).dead")
        await conn.close()
    }

    func testServeWaitsForAnUnreachableBrokerAndStillStopsCleanly() throws {
        let (p, out) = try start(env: ["WABRIDGE_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/"])
        XCTAssertTrue(out.wait(for: "broker not reachable; retrying", timeout: 20), out.value)
        XCTAssertTrue(p.isRunning, "a missing broker must not crash the worker")
        XCTAssertEqual(stop(p), 0)
    }

    func testServeRefusesBadConfigurationWithTheCode() throws {
        let (p, out) = try start(env: ["WABRIDGE_ADMIN_HOST": "0.0.0.0"])
        p.waitUntilExit()
        XCTAssertNotEqual(p.terminationStatus, 0)
        XCTAssertTrue(out.wait(for: "config.admin_token_required", timeout: 5), out.value)
    }

    /// The newcomer's path: `wabridge serve` against the simulator (broker down), a device
    /// created and QR-linked over the admin HTTP, then the process restarted: the device
    /// reconnects from disk.
    func testServeLinksADeviceOverAdminHTTPAndReconnectsAfterARestart() async throws {
        let sim = try WASim()
        try await sim.start()
        let port = try Self.freeLoopbackPort()
        let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("wabridge-serve-\(UUID().uuidString)").path
        let root = sim.rootPublicKey.rawRepresentation.map { String(format: "%02x", $0) }.joined()
        let env = [
            "WABRIDGE_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/",
            "WABRIDGE_WA_URL": await sim.endpoint.absoluteString,
            "WABRIDGE_WA_ROOT_KEY": root,
            "WABRIDGE_ADMIN_PORT": String(port),
            "WABRIDGE_ADMIN_TOKEN": "t0ken",
            "WABRIDGE_RECONNECT_SPREAD": "0",
        ]
        func http(_ method: String, _ path: String, token: String? = "t0ken") async throws -> (Int, [String: Any]) {
            var r = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
            r.httpMethod = method
            if let token { r.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
            let (data, response) = try await URLSession.shared.data(for: r)
            let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
            return ((response as? HTTPURLResponse)?.statusCode ?? 0, object)
        }
        func waitHealthy(_ p: Process, _ out: Output) async throws {
            for _ in 0..<200 {
                if let (status, _) = try? await http("GET", "/readyz", token: nil), status == 200 { return }
                if !p.isRunning { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            XCTFail("admin HTTP never became ready (running: \(p.isRunning)); worker output:\n\(out.value)")
            throw XCTestError(.timeoutWhileWaiting)
        }
        func waitState(_ state: String) async throws {
            for _ in 0..<200 {
                if let (_, d) = try? await http("GET", "/devices/sales-1"), d["state"] as? String == state { return }
                try await Task.sleep(for: .milliseconds(100))
            }
            XCTFail("device never reached \(state)")
        }

        let (p, out) = try start(env: env, dataDir: dataDir)
        try await waitHealthy(p, out)
        let (unauthorized, _) = try await http("GET", "/devices", token: nil)
        XCTAssertEqual(unauthorized, 401)
        let (created, _) = try await http("POST", "/devices?id=ignored")
        XCTAssertEqual(created, 201, "an empty body creates a device with a generated ID")
        var r = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/devices")!)
        r.httpMethod = "POST"
        r.setValue("Bearer t0ken", forHTTPHeaderField: "Authorization")
        r.httpBody = Data(#"{"id":"sales-1"}"#.utf8)
        let (_, createResponse) = try await URLSession.shared.data(for: r)
        XCTAssertEqual((createResponse as? HTTPURLResponse)?.statusCode, 201)
        let (qrStatus, qr) = try await http("POST", "/devices/sales-1/login/qr")
        XCTAssertEqual(qrStatus, 200)
        await sim.createPhone(number: "15557070707")
        let jid = try await sim.scanQR(phone: "15557070707", qr: try XCTUnwrap(qr["qr"] as? String))
        try await waitState("connected")
        XCTAssertEqual(stop(p), 0, out.value)

        // Restart the process on the same data folder: the device reconnects from disk.
        let (p2, out2) = try start(env: env, dataDir: dataDir)
        try await waitHealthy(p2, out2)
        try await waitState("connected")
        let online = await sim.isOnline(jid)
        XCTAssertTrue(online)
        XCTAssertEqual(stop(p2), 0, out2.value)
        await sim.shutdown()
        try? FileManager.default.removeItem(atPath: dataDir)
    }

    /// A loopback port nobody listens on now (the kernel picks it), so the
    /// worker's admin port cannot collide with another socket of the suite.
    static func freeLoopbackPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw XCTestError(.failureWhileWaiting) }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard bound else { throw XCTestError(.failureWhileWaiting) }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}
