import AMQP
import Foundation
import Synchronization
import XCTest

/// Connection loss, recovery and TLS, against the real test broker.
final class ResilienceTests: XCTestCase {
    /// Publishes ids `0..<count` with retries on retryable errors, the way
    /// an outbox would; returns how many attempts failed retryably.
    private static func publishAll(_ conn: AMQPConnection, queue: String, count: Int) async throws -> Int {
        var retries = 0
        for i in 0..<count {
            // Paced so the interruption lands mid-stream.
            if i % 10 == 0 { try await Task.sleep(for: .milliseconds(10)) }
            let m = AMQPOutgoingMessage(
                exchange: "", routingKey: queue, body: Array("\(i)".utf8),
                properties: AMQPProperties(deliveryMode: .persistent, messageID: "\(i)"))
            var attempts = 0
            while true {
                do {
                    try await conn.publish(m)
                    break
                } catch {
                    XCTAssertTrue(error.isRetryable, "unexpected permanent error \(error)")
                    retries += 1
                    attempts += 1
                    if attempts > 300 { throw error }
                    try await Task.sleep(for: .milliseconds(100))
                }
            }
        }
        return retries
    }

    private static func consumeUntilAllSeen(
        _ consumer: AMQPConsumer, count: Int, progress: Progress, timeout: Duration = .seconds(90)
    ) async throws -> Set<String> {
        try await withThrowingTaskGroup(of: Set<String>?.self) { group in
            group.addTask {
                var seen = Set<String>()
                for try await d in consumer {
                    if let id = d.properties.messageID { seen.insert(id) }
                    progress.seen.store(seen.count, ordering: .relaxed)
                    // A stale ack after a reconnect is fine: the broker redelivers.
                    try? d.ack()
                    if seen.count == count { break }
                }
                return seen
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            let first = try await group.next()!
            group.cancelAll()
            guard let seen = first else { throw XCTestError(.timeoutWhileWaiting) }
            return seen
        }
    }

    private func recoveryScenario(interrupt: @escaping @Sendable () throws -> Void) async throws {
        let consumerConn = try await Broker.connect(name: "amqp-tests-recovery-consumer")
        let publisherConn = try await Broker.connect(name: "amqp-tests-recovery-publisher")
        let events = consumerConn.events()
        let q = Broker.uniqueName("recovery")
        try await consumerConn.declareQueue(AMQPQueueDeclaration(name: q, durable: true))
        let consumer = try await consumerConn.consume(queue: q, prefetch: 20)
        let n = 1500

        let progress = Progress()
        async let seen = Self.consumeUntilAllSeen(consumer, count: n, progress: progress)
        async let retries = Self.publishAll(publisherConn, queue: q, count: n)
        try await Task.sleep(for: .milliseconds(500))
        try interrupt()
        _ = try await waitForEvent(events) { if case .disconnected = $0 { return true } else { return false } }
        let atLoss = progress.seen.load(ordering: .relaxed)
        XCTAssertGreaterThan(atLoss, 0, "the consumer had started")
        XCTAssertLessThan(atLoss, n, "the connection must drop mid-stream for this test to mean anything")
        let back = try await waitForEvent(events, timeout: .seconds(60)) { if case .connected = $0 { return true } else { return false } }
        XCTAssertEqual(back, .connected(generation: 2))

        let got = try await seen
        let retried = try await retries
        XCTAssertEqual(got, Set((0..<n).map(String.init)), "every published message was delivered")
        print("recovery: \(n) messages, \(atLoss) seen before the loss, \(retried) publish retries")
        try await consumer.cancel()
        try await consumerConn.deleteQueue(q)
        await consumerConn.close()
        await publisherConn.close()
    }

    func testConsumerRecoveryAfterCloseAllConnections() async throws {
        try await recoveryScenario {
            try Broker.ctl("close_all_connections", "wabridge test: forced close")
        }
    }

    func testConsumerRecoveryAfterBrokerStopAndStart() async throws {
        try await recoveryScenario {
            try Broker.ctl("stop_app")
            Thread.sleep(forTimeInterval: 1)
            try Broker.ctl("start_app")
        }
    }

    func testInFlightPublishesNeverReportSuccessWhenTheConnectionDies() async throws {
        let conn = try await Broker.connect(name: "amqp-tests-inflight")
        let q = Broker.uniqueName("inflight")
        try await conn.declareQueue(AMQPQueueDeclaration(name: q, durable: true))
        let n = 20_000
        let killer = Task.detached {
            try await Task.sleep(for: .milliseconds(150))
            try Broker.ctl("close_all_connections", "wabridge test: in-flight")
        }
        let results = await conn.publish(contentsOf: (0..<n).map { i in
            AMQPOutgoingMessage(
                exchange: "", routingKey: q, body: Array(repeating: 7, count: 512),
                properties: AMQPProperties(deliveryMode: .persistent, messageID: "\(i)"))
        })
        try await killer.value
        let confirmed = Set(results.enumerated().filter { $0.element == nil }.map { String($0.offset) })
        let failed = results.compactMap { $0 }
        XCTAssertTrue(failed.allSatisfy { $0.isRetryable }, "every failure is retryable: \(Set(failed.map(\.code)))")
        print("in-flight: \(confirmed.count) confirmed, \(failed.count) failed retryably")

        // Wait for the reconnect, then check every confirmed id is stored.
        let events = conn.events()
        if case .failure = await Result(catching: { try await conn.declareQueue(AMQPQueueDeclaration(name: q), passive: true) }) {
            _ = try await waitForEvent(events, timeout: .seconds(30)) { if case .connected = $0 { return true } else { return false } }
        }
        let stored = try await conn.declareQueue(AMQPQueueDeclaration(name: q), passive: true)
        XCTAssertGreaterThanOrEqual(Int(stored.messageCount), confirmed.count)
        let consumer = try await conn.consume(queue: q, prefetch: 1000)
        let all = try await collect(consumer, count: Int(stored.messageCount))
        let storedIDs = Set(all.compactMap { $0.properties.messageID })
        XCTAssertTrue(confirmed.isSubset(of: storedIDs), "a confirmed publish is missing from the queue")
        try await consumer.cancel()
        try await conn.deleteQueue(q)
        await conn.close()
    }

    func testHeartbeatsAreServicedWhileIdle() async throws {
        let conn = try await Broker.connect(name: "amqp-tests-heartbeat", heartbeat: 1)
        let events = conn.events()
        let listing = try Broker.ctl("list_connections", "name", "timeout", "client_properties")
        XCTAssertTrue(listing.split(separator: "\n").contains { $0.contains("amqp-tests-heartbeat") && $0.contains("\t1\t") },
                      "the broker should see a 1 s heartbeat: \(listing.prefix(400))")
        // Without heartbeats the broker drops the link after about 2 s of silence.
        let quiet = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                for await e in events { if case .disconnected = e { return false } }
                return true
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(6))
                return true
            }
            let r = await group.next()!
            group.cancelAll()
            return r
        }
        XCTAssertTrue(quiet, "connection dropped while idle: heartbeats not serviced")
        let q = Broker.uniqueName("hb")
        try await conn.declareQueue(AMQPQueueDeclaration(name: q, durable: false, autoDelete: true))
        await conn.close()
    }

    func testAFrozenBrokerIsDetectedByHeartbeatTimeout() async throws {
        let pidText = try String(contentsOfFile: try Broker.env("WABRIDGE_TEST_BROKER_PID_FILE"), encoding: .utf8)
        let pid = try XCTUnwrap(Int32(pidText.trimmingCharacters(in: .whitespacesAndNewlines)))
        let conn = try await Broker.connect(name: "amqp-tests-frozen", heartbeat: 1)
        let events = conn.events()
        // SIGSTOP freezes the broker without closing its sockets: only
        // missing heartbeats can reveal that it is gone.
        XCTAssertEqual(kill(pid, SIGSTOP), 0)
        var resumed = false
        defer { if !resumed { kill(pid, SIGCONT) } }
        let lost = try await waitForEvent(events, timeout: .seconds(15)) { if case .disconnected = $0 { return true } else { return false } }
        guard case .disconnected(let error) = lost else { return XCTFail() }
        XCTAssertEqual(error.code, .heartbeatTimeout)
        kill(pid, SIGCONT)
        resumed = true
        let back = try await waitForEvent(events, timeout: .seconds(60)) { if case .connected = $0 { return true } else { return false } }
        XCTAssertEqual(back, .connected(generation: 2))
        await conn.close()
    }

    func testBlockedConnectionHoldsPublishesUntilUnblocked() async throws {
        let conn = try await Broker.connect(name: "amqp-tests-blocked")
        let events = conn.events()
        let q = Broker.uniqueName("blocked")
        try await conn.declareQueue(AMQPQueueDeclaration(name: q, durable: false, autoDelete: true))
        // A memory alarm makes the broker block publishing connections.
        try Broker.ctl("set_vm_memory_high_watermark", "0.0000001")
        defer { _ = try? Broker.ctl("set_vm_memory_high_watermark", "0.4") }
        // The broker announces the block on the first publish after the alarm.
        let first = Task { try await conn.publish(AMQPOutgoingMessage(exchange: "", routingKey: q, body: [1])) }
        let blocked = try await waitForEvent(events) { if case .blocked = $0 { return true } else { return false } }
        guard case .blocked(let reason) = blocked else { return XCTFail() }
        XCTAssertFalse(reason.isEmpty)
        let held = Task { try await conn.publish(AMQPOutgoingMessage(exchange: "", routingKey: q, body: [2])) }
        try await Task.sleep(for: .milliseconds(300))
        try Broker.ctl("set_vm_memory_high_watermark", "0.4")
        _ = try await waitForEvent(events) { $0 == .unblocked }
        try await first.value
        try await held.value
        let state = try await conn.declareQueue(AMQPQueueDeclaration(name: q, durable: false, autoDelete: true), passive: true)
        XCTAssertEqual(state.messageCount, 2)
        await conn.close()
    }

    func testTLSConnectionVerifiesTheBroker() async throws {
        let dir = try Broker.tlsDir
        var cfg = try Broker.configuration(url: try Broker.tlsURL, name: "amqp-tests-tls")
        cfg.tls = AMQPConfiguration.TLS(caFile: "\(dir)/ca.pem")
        let conn = try await AMQPConnection.connect(cfg)
        let q = Broker.uniqueName("tls")
        try await conn.declareQueue(AMQPQueueDeclaration(name: q, durable: false, autoDelete: true))
        try await conn.publish(AMQPOutgoingMessage(exchange: "", routingKey: q, body: Array("over tls".utf8)))
        let got = try await collect(try await conn.consume(queue: q), count: 1)
        XCTAssertEqual(got[0].body, Array("over tls".utf8))
        await conn.close()

        // Mutual TLS: a client certificate signed by the same CA.
        cfg.tls = AMQPConfiguration.TLS(caFile: "\(dir)/ca.pem", certFile: "\(dir)/client.pem", keyFile: "\(dir)/client.key")
        let mutual = try await AMQPConnection.connect(cfg)
        await mutual.close()

        // A CA that did not sign the broker's certificate is refused.
        cfg.tls = AMQPConfiguration.TLS(caFile: "\(dir)/client.pem")
        do {
            _ = try await AMQPConnection.connect(cfg)
            XCTFail("an unverifiable broker certificate must be refused")
        } catch {
            XCTAssertEqual(error.code, .tlsFailed)
        }
    }
}

final class Progress: Sendable {
    let seen = Atomic<Int>(0)
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
