import AMQP
import Foundation
import WATestSupport
import XCTest

/// The built executables (`wabridge`, `wabridge-sim`) run as child processes,
/// stopped by PID, as in `ServeProcessTests`.
final class CLIProcess {
    let process: Process
    let stdout: Output
    let stderr: Output

    /// What a child wrote so far. Its output goes to a file, not a pipe: the whole
    /// text is there once the process has exited, with no end-of-pipe race.
    final class Output: Sendable {
        let url: URL
        init() throws {
            url = FileManager.default.temporaryDirectory.appendingPathComponent("wabridge-cli-\(UUID().uuidString).out")
            guard FileManager.default.createFile(atPath: url.path, contents: nil) else {
                throw XCTestError(.failureWhileWaiting, userInfo: [NSLocalizedDescriptionKey: "cannot create \(url.path)"])
            }
        }
        deinit { try? FileManager.default.removeItem(at: url) }
        var value: String { (try? String(contentsOf: url, encoding: .utf8)) ?? "" }
        var lines: [String] { value.split(separator: "\n").map(String.init) }
    }

    private init(process: Process) throws {
        self.process = process
        stdout = try Output()
        stderr = try Output()
    }

    /// Starts `name` (next to the test bundle) with `arguments`; the environment
    /// is this one without any `WABRIDGE_*`, plus `env`.
    static func start(_ name: String, _ arguments: [String], env: [String: String] = [:]) throws -> CLIProcess {
        let p = Process()
        p.executableURL = try binary(name)
        p.arguments = arguments
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("WABRIDGE_") }
        environment.merge(env) { $1 }
        p.environment = environment
        let child = try CLIProcess(process: p)
        p.standardOutput = try FileHandle(forWritingTo: child.stdout.url)
        p.standardError = try FileHandle(forWritingTo: child.stderr.url)
        p.standardInput = FileHandle.nullDevice
        try p.run()
        return child
    }

    /// Runs to completion (a safety bound kills it) and returns the exit status.
    static func run(_ name: String, _ arguments: [String], env: [String: String] = [:], timeout: TimeInterval = 60)
        async throws -> (status: Int32?, stdout: String, stderr: String)
    {
        let child = try start(name, arguments, env: env)
        let status = await child.waitExit(timeout: timeout)
        return (status, child.stdout.value, child.stderr.value)
    }

    /// The exit status; nil when it had to be killed after `timeout` (a safety bound, not a timing check).
    func waitExit(timeout: TimeInterval = 60) async -> Int32? {
        let end = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < end {
            try? await Task.sleep(for: .milliseconds(20))
        }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            return nil
        }
        return process.terminationStatus
    }

    /// Sends `signal` and waits for the exit.
    func stop(signal: Int32 = SIGTERM, timeout: TimeInterval = 30) async -> Int32? {
        kill(process.processIdentifier, signal)
        return await waitExit(timeout: timeout)
    }

    /// Waits until `output` contains `needle` (false when the bound passes or the process ended without it).
    func wait(for needle: String, in output: Output, timeout: TimeInterval = 30) async -> Bool {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            if output.value.contains(needle) { return true }
            if !process.isRunning { break }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return output.value.contains(needle)
    }

    static func binary(_ name: String) throws -> URL { try WorkerProcess.binary(named: name) }

    static func brokerURL() throws -> String {
        guard let v = ProcessInfo.processInfo.environment["WABRIDGE_TEST_AMQP_URL"] else {
            throw XCTestError(.failureWhileWaiting, userInfo: [NSLocalizedDescriptionKey: "WABRIDGE_TEST_AMQP_URL unset: start scripts/test-broker.sh"])
        }
        return v
    }

    /// A loopback port nobody listens on now (the kernel picks it).
    static func freeLoopbackPort() throws -> Int { try WorkerProcess.freeLoopbackPort() }
}

/// The next delivery of `consumer`, or nil when none came within the safety bound.
func firstDelivery(_ consumer: AMQPConsumer, timeout: TimeInterval = 30) async throws -> AMQPDelivery? {
    try await withThrowingTaskGroup(of: AMQPDelivery?.self) { group in
        group.addTask {
            for try await d in consumer { return d }
            return nil
        }
        group.addTask {
            try await Task.sleep(for: .seconds(timeout))
            return nil
        }
        let first = try await group.next() ?? nil
        group.cancelAll()
        return first
    }
}

func jsonObject(_ text: some StringProtocol) -> [String: Any]? {
    (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]
}
