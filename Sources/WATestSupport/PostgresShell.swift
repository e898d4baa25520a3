import Foundation

/// One SQL statement through Debian's `psql` (tests and benchmarks make and drop their
/// databases with it, so they need no database driver of their own).
public enum PostgresShell {
    /// Runs `sql` against `url` with `ON_ERROR_STOP`; the rows of the first column, as `psql -At`
    /// prints them. A failing statement throws with psql's own message.
    @discardableResult
    public static func run(_ url: String, _ sql: String) throws -> [String] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["psql", url, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql]
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let problem = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw WorkerProcess.Failure(description: "psql: " + String(decoding: problem, as: UTF8.self))
        }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }
}
