import AMQP
import Foundation
import XCTest

/// The real RabbitMQ the test command starts (scripts/test-broker.sh).
/// Tests fail, never skip, when it is not there.
enum Broker {
    static func env(_ name: String) throws -> String {
        guard let v = ProcessInfo.processInfo.environment[name], !v.isEmpty else {
            throw XCTestError(.failureWhileWaiting, userInfo: [
                NSLocalizedDescriptionKey: "\(name) is not set: run the tests through scripts/test.sh (it starts the test broker)"
            ])
        }
        return v
    }

    static var url: String { get throws { try env("WABRIDGE_TEST_AMQP_URL") } }
    /// The second broker (scripts/test.sh starts it beside the first). Under
    /// CI a missing one fails the test; elsewhere the test is skipped.
    static var url2: String {
        get throws {
            if ProcessInfo.processInfo.environment["WABRIDGE_TEST_AMQP_URL_2", default: ""].isEmpty,
                ProcessInfo.processInfo.environment["CI"] != "true"
            {
                throw XCTSkip("WABRIDGE_TEST_AMQP_URL_2 is not set: run through scripts/test.sh for the two-broker tests")
            }
            return try env("WABRIDGE_TEST_AMQP_URL_2")
        }
    }
    static var tlsURL: String { get throws { try env("WABRIDGE_TEST_AMQPS_URL") } }
    static var tlsDir: String { get throws { try env("WABRIDGE_TEST_TLS_DIR") } }

    static func configuration(
        url: String? = nil, name: String = "amqp-tests", heartbeat: UInt16 = 30,
        reconnect: AMQPConfiguration.ReconnectPolicy = .init(initialDelay: .milliseconds(100), maxDelay: .seconds(2))
    ) throws -> AMQPConfiguration {
        try AMQPConfiguration(url: url ?? Broker.url, heartbeat: heartbeat, connectionName: name, reconnect: reconnect)
    }

    static func connect(name: String = "amqp-tests", heartbeat: UInt16 = 30) async throws -> AMQPConnection {
        try await AMQPConnection.connect(configuration(name: name, heartbeat: heartbeat))
    }

    /// Runs rabbitmqctl against the test broker; returns its stdout.
    @discardableResult
    static func ctl(_ args: String...) throws -> String { try run(ctl: "WABRIDGE_TEST_RABBITMQCTL", args) }

    /// rabbitmqctl against the second broker.
    @discardableResult
    static func ctl2(_ args: String...) throws -> String { try run(ctl: "WABRIDGE_TEST_RABBITMQCTL_2", args) }

    private static func run(ctl: String, _ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try env(ctl))
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw XCTestError(.failureWhileWaiting, userInfo: [NSLocalizedDescriptionKey: "rabbitmqctl \(args) exited \(p.terminationStatus)"])
        }
        return String(decoding: data, as: UTF8.self)
    }

    static func uniqueName(_ base: String) -> String {
        "test.\(base).\(UUID().uuidString.prefix(8))"
    }
}

/// Waits for the first event matching `predicate`, up to `timeout`.
func waitForEvent(
    _ events: AsyncStream<AMQPConnectionEvent>, timeout: Duration = .seconds(30),
    _ predicate: @escaping @Sendable (AMQPConnectionEvent) -> Bool
) async throws -> AMQPConnectionEvent {
    try await withThrowingTaskGroup(of: AMQPConnectionEvent?.self) { group in
        group.addTask {
            for await e in events where predicate(e) { return e }
            return nil
        }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        let first = try await group.next()!
        group.cancelAll()
        guard let e = first else { throw XCTestError(.timeoutWhileWaiting) }
        return e
    }
}

/// Collects `count` deliveries (acknowledging each) or fails after `timeout`.
func collect(
    _ consumer: AMQPConsumer, count: Int, timeout: Duration = .seconds(60), ack: Bool = true
) async throws -> [AMQPDelivery] {
    try await withThrowingTaskGroup(of: [AMQPDelivery]?.self) { group in
        group.addTask {
            var out: [AMQPDelivery] = []
            for try await d in consumer {
                if ack { try d.ack() }
                out.append(d)
                if out.count == count { break }
            }
            return out
        }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        let first = try await group.next()!
        group.cancelAll()
        guard let got = first else { throw XCTestError(.timeoutWhileWaiting) }
        return got
    }
}
