import Foundation

/// A Python program from `Tests/Interop/python/`, run in its venv under
/// `.venv-peers/NAME/` (made by scripts/test.sh from
/// `Tests/Interop/peers/NAME.txt`) and talked to over stdin/stdout pipes.
///
/// Interop tests must fail, never skip, when the peer cannot run: a missing
/// venv throws an error that says how to make it. Every peer is bounded in
/// time: after `timeout` a watchdog terminates it by PID, which closes its
/// pipes and unblocks any read.
public final class PythonPeer: @unchecked Sendable {
    // @unchecked: one test drives a peer from one thread; the watchdog only
    // calls Process.terminate(), which is safe from any thread.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        public init(description: String) { self.description = description }
    }

    /// The repository root, from this file's own path (Sources/WATestSupport/…).
    public static let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    private let process = Process()
    private let stdin = Pipe()
    private let stdout = Pipe()
    private let stderr = Pipe()
    private var readBuffer = Data()

    public init(venv: String, script: String, arguments: [String] = [], timeout: TimeInterval = 30) throws {
        let root = Self.repositoryRoot
        let python = root.appendingPathComponent(".venv-peers/\(venv)/bin/python")
        guard FileManager.default.isExecutableFile(atPath: python.path) else {
            throw Failure(description: """
                Python peer venv missing: \(python.path). Run scripts/test.sh (it makes one venv per \
                Tests/Interop/peers/*.txt), or by hand: python3 -m venv .venv-peers/\(venv) && \
                .venv-peers/\(venv)/bin/pip install -r Tests/Interop/peers/\(venv).txt
                """)
        }
        process.executableURL = python
        process.arguments = ["-u", root.appendingPathComponent("Tests/Interop/python/\(script)").path] + arguments
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        let process = self.process
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout) {
            if process.isRunning { process.terminate() }
        }
    }

    deinit {
        if process.isRunning { process.terminate() }
    }

    public func write(_ data: Data) throws {
        do {
            try stdin.fileHandleForWriting.write(contentsOf: data)
        } catch {
            throw Failure(description: "writing to the Python peer failed: \(error); stderr: \(drainStderr())")
        }
    }

    /// Reads exactly `count` bytes; throws if the peer exits (or is killed) first.
    public func read(exactly count: Int) throws -> Data {
        while readBuffer.count < count {
            let chunk = stdout.fileHandleForReading.availableData
            guard !chunk.isEmpty else {
                throw Failure(description: "Python peer closed its output early; stderr: \(drainStderr())")
            }
            readBuffer.append(chunk)
        }
        let out = readBuffer.prefix(count)
        readBuffer = Data(readBuffer.dropFirst(count))
        return Data(out)
    }

    /// Reads whatever arrives next (at least one byte).
    public func readAvailable() throws -> Data {
        if !readBuffer.isEmpty {
            defer { readBuffer = Data() }
            return readBuffer
        }
        let chunk = stdout.fileHandleForReading.availableData
        guard !chunk.isEmpty else {
            throw Failure(description: "Python peer closed its output early; stderr: \(drainStderr())")
        }
        return chunk
    }

    public func readLine() throws -> String {
        while true {
            if let newline = readBuffer.firstIndex(of: 0x0A) {
                let line = readBuffer[readBuffer.startIndex..<newline]
                readBuffer = Data(readBuffer[(newline + 1)...])
                return String(decoding: line, as: UTF8.self)
            }
            let chunk = stdout.fileHandleForReading.availableData
            guard !chunk.isEmpty else {
                throw Failure(description: "Python peer closed its output early; stderr: \(drainStderr())")
            }
            readBuffer.append(chunk)
        }
    }

    /// Sends one JSON object as a line and reads one back.
    public func request(_ object: [String: String]) throws -> [String: Any] {
        let line = try JSONSerialization.data(withJSONObject: object) + Data([0x0A])
        try write(line)
        let answer = try readLine()
        guard let parsed = try JSONSerialization.jsonObject(with: Data(answer.utf8)) as? [String: Any] else {
            throw Failure(description: "Python peer answered with no JSON object: \(answer)")
        }
        return parsed
    }

    /// Closes the peer's stdin, waits for it to exit, and throws unless it exited with 0.
    public func finish() throws {
        try? stdin.fileHandleForWriting.close()
        process.waitUntilExit()
        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            throw Failure(description: """
                Python peer failed (\(process.terminationReason == .exit ? "exit" : "signal") \
                \(process.terminationStatus)); stderr: \(drainStderr())
                """)
        }
    }

    private func drainStderr() -> String {
        if process.isRunning { process.terminate() }
        let data = (try? stderr.fileHandleForReading.readToEnd()) ?? nil
        return String(decoding: data ?? Data(), as: UTF8.self)
    }
}
