import Foundation
import Synchronization

/// The real `wabridge` binary run as a separate process by a test, stopped by
/// PID (SIGTERM, or SIGKILL to simulate a crash), as a supervisor would.
public final class WorkerProcess: Sendable {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        public init(description: String) { self.description = description }
    }

    /// Everything the worker wrote to stderr (its JSON log lines).
    public final class Output: Sendable {
        private let text = Mutex<String>("")
        func append(_ d: Data) { text.withLock { $0 += String(decoding: d, as: UTF8.self) } }
        public var value: String { text.withLock { $0 } }

        /// Polls for `needle` in the output, up to `timeout` seconds.
        public func wait(for needle: String, timeout: TimeInterval) -> Bool {
            let end = Date().addingTimeInterval(timeout)
            while Date() < end {
                if value.contains(needle) { return true }
                Thread.sleep(forTimeInterval: 0.05)
            }
            return value.contains(needle)
        }
    }

    private let process: Process
    public let output = Output()
    public var pid: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }

    /// Finds the `wabridge` binary beside the test bundle (or under `.build/debug`).
    public static func binary(named name: String = "wabridge") throws -> URL {
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [dir, dir.deletingLastPathComponent(),
                          URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()] {
            let url = candidate.appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        let fallback = URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(".build/debug/\(name)")
        guard FileManager.default.isExecutableFile(atPath: fallback.path) else {
            throw Failure(description: "\(name) binary not found; run swift build first")
        }
        return fallback
    }

    /// Starts `wabridge <arguments>` (the binary beside the tests unless `binary` is given) with
    /// this process's environment minus any `WABRIDGE_*`, plus `environment`.
    public init(binary: URL? = nil, arguments: [String] = ["serve"], environment: [String: String]) throws {
        let p = Process()
        p.executableURL = try binary ?? Self.binary()
        p.arguments = arguments
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("WABRIDGE_") }
        env.merge(environment) { $1 }
        p.environment = env
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        let out = output
        err.fileHandleForReading.readabilityHandler = { h in out.append(h.availableData) }
        try p.run()
        process = p
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    /// SIGTERM, then SIGKILL after `timeout`; the exit status, nil when it had to be killed.
    @discardableResult
    public func stop(timeout: TimeInterval = 20) -> Int32? {
        guard process.isRunning else { return process.terminationStatus }
        kill(process.processIdentifier, SIGTERM)
        let end = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < end { Thread.sleep(forTimeInterval: 0.05) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return nil
        }
        return process.terminationStatus
    }

    /// Waits for the process to exit by itself; its exit status.
    public func waitForExit() -> Int32 {
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Sends `signal` (SIGSTOP freezes the worker, SIGCONT resumes it).
    public func send(signal: Int32) { if process.isRunning { kill(process.processIdentifier, signal) } }

    /// `kill -9`: no cleanup, no flushing, as a crash or an OOM kill.
    public func crash() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// A loopback port nobody listens on now (the kernel picks it).
    public static func freeLoopbackPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket() failed") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard bound else { throw Failure(description: "no free loopback port") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}
