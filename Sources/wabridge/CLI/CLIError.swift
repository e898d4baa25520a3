import ArgumentParser
import Foundation
import Logging

/// A helper command's failure: a code a script can match on, a message for
/// the person at the terminal, and the process exit status.
///
/// Exit statuses of the helper commands (`devices`, `send`, `events`, `health`):
/// 0 success; 1 the bridge answered with an error (API error, command
/// `failed`/`rejected`); 3 no result before `--timeout`; 4 the admin API or
/// the broker could not be reached or refused the connection.
struct CLIError: Error, CustomStringConvertible {
    enum Exit: Int32 {
        case refused = 1
        case timeout = 3
        case unreachable = 4
    }

    var code: String
    var message: String
    var exit: Exit

    init(_ code: String, _ message: String, exit: Exit = .refused) {
        self.code = code
        self.message = message
        self.exit = exit
    }

    var description: String { "\(code): \(message)" }
}

enum CLI {
    /// Runs a helper command's body; a `CLIError` becomes `error: CODE: message`
    /// on standard error and its exit status (ArgumentParser's own errors pass through).
    static func run(_ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let e as CLIError {
            printError("error: \(e.code): \(e.message)")
            throw ExitCode(e.exit.rawValue)
        }
    }

    /// One line on standard output, written at once (no buffering between lines,
    /// so a pipe sees each event as it arrives).
    static func printLine(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    static func printError(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    /// Library logs go to standard error at `warning` and above: standard
    /// output carries only the command's answer.
    static func bootstrapLogging() {
        let level = ProcessInfo.processInfo.environment["WABRIDGE_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
    }
}
