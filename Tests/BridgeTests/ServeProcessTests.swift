import AMQP
@testable import BridgeStore
import Foundation
import Logging
import PostgresNIO
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import WASim
import WATestSupport
import XCTest

/// Runs the real `wabridge serve` binary against the test broker and stops
/// it by PID, as an operator's supervisor would.
final class ServeProcessTests: XCTestCase {
    private func testBrokerURL() throws -> String { try TestBroker.env("WABRIDGE_TEST_AMQP_URL") }

    /// `wabridge serve` with a data folder and an admin port of its own unless given.
    private func start(env extra: [String: String], dataDir: String? = nil) throws -> (WorkerProcess, WorkerProcess.Output) {
        var env = [
            "WABRIDGE_DATA_DIR": dataDir ?? FileManager.default.temporaryDirectory.appendingPathComponent("wabridge-serve-\(UUID().uuidString)").path,
            "WABRIDGE_ADMIN_PORT": String(try WorkerProcess.freeLoopbackPort()),
        ]
        env.merge(extra) { $1 }
        let p = try WorkerProcess(environment: env)
        return (p, p.output)
    }

    private func stop(_ p: WorkerProcess) -> Int32? { p.stop() }

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
        XCTAssertNotEqual(p.waitForExit(), 0)
        XCTAssertTrue(out.wait(for: "config.admin_token_required", timeout: 5), out.value)
    }

    /// The newcomer's path: `wabridge serve` against the simulator (broker down), a device
    /// created and QR-linked over the admin HTTP, then the process restarted: the device
    /// reconnects from disk.
    func testServeLinksADeviceOverAdminHTTPAndReconnectsAfterARestart() async throws {
        try await linkAndRestart(store: [:])
    }

    /// The same path with every key, history row and outbox in PostgreSQL
    /// (`WABRIDGE_DATABASE_URL`, a database of its own on the test server).
    func testServeOnPostgreSQLLinksADeviceAndReconnectsAfterARestart() async throws {
        guard let admin = ProcessInfo.processInfo.environment["WABRIDGE_TEST_DATABASE_URL"], !admin.isEmpty else {
            let message = "WABRIDGE_TEST_DATABASE_URL is not set: start one with `eval \"$(scripts/test-postgres.sh start)\"`"
            if ProcessInfo.processInfo.environment["CI"] == "true" { XCTFail(message); return }
            throw XCTSkip(message)
        }
        let name = "t_serve_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16)
        try await Self.adminSQL(admin, "CREATE DATABASE \(name)")
        var url = try XCTUnwrap(URLComponents(string: admin))
        url.path = "/\(name)"
        do {
            try await linkAndRestart(store: ["WABRIDGE_DATABASE_URL": try XCTUnwrap(url.string)])
            let keys = try await Self.adminSQL(try XCTUnwrap(url.string), "SELECT device_id FROM account")
            XCTAssertEqual(keys, ["sales-1"], "the linked device's keys are in PostgreSQL")
        } catch {
            _ = try? await Self.adminSQL(admin, "DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
            throw error
        }
        _ = try? await Self.adminSQL(admin, "DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
    }

    /// Runs one statement; returns the first column of its rows as text.
    @discardableResult
    private static func adminSQL(_ url: String, _ sql: String) async throws -> [String] {
        let database = PostgresDatabase(configuration: try PostgresDatabase.configuration(url: url), logger: Logger(label: "test.admin"))
        do {
            let rows = try await database.read("admin") { c in
                try await c.rows(PostgresQuery(unsafeSQL: sql), database.logger).compactMap { try? $0.decode(String.self) }
            }
            await database.shutdown()
            return rows
        } catch {
            await database.shutdown()
            throw error
        }
    }

    private func linkAndRestart(store: [String: String]) async throws {
        let sim = try WASim()
        try await sim.start()
        let port = try WorkerProcess.freeLoopbackPort()
        let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("wabridge-serve-\(UUID().uuidString)").path
        let root = sim.rootPublicKey.rawRepresentation.map { String(format: "%02x", $0) }.joined()
        let env = [
            "WABRIDGE_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/",
            "WABRIDGE_WA_URL": await sim.endpoint.absoluteString,
            "WABRIDGE_WA_ROOT_KEY": root,
            "WABRIDGE_ADMIN_PORT": String(port),
            "WABRIDGE_ADMIN_TOKEN": "t0ken",
            "WABRIDGE_RECONNECT_SPREAD": "0",
        ].merging(store) { $1 }
        func http(_ method: String, _ path: String, token: String? = "t0ken") async throws -> (Int, [String: Any]) {
            var r = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
            r.httpMethod = method
            if let token { r.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
            let (data, response) = try await URLSession.shared.data(for: r)
            let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
            return ((response as? HTTPURLResponse)?.statusCode ?? 0, object)
        }
        func waitHealthy(_ p: WorkerProcess, _ out: WorkerProcess.Output) async throws {
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
}

