import AMQP
import Foundation
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

    private func start(env extra: [String: String]) throws -> (Process, Output) {
        let p = Process()
        p.executableURL = try binary()
        p.arguments = ["serve"]
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("WABRIDGE_") }
        env["WABRIDGE_DATA_DIR"] = FileManager.default.temporaryDirectory.appendingPathComponent("wabridge-serve-\(UUID().uuidString)").path
        // The admin HTTP listens too: a port of its own per run.
        env["WABRIDGE_ADMIN_PORT"] = String(Int.random(in: 20000...60000))
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
}
