import AMQP
import Foundation
import Synchronization
import XCTest

/// Consumers sharing channels: more of them than `channel_max`, per-consumer
/// settlement, and a failure or cancel of one leaving its channel-mates alone.
final class SharedChannelTests: XCTestCase {
    /// What each consumer of a test received (message ids) and how it ended.
    final class Tally: Sendable {
        private let state = Mutex<(got: [Int: Set<String>], ended: [Int: String])>(([:], [:]))

        func add(_ i: Int, _ id: String) { state.withLock { _ = $0.got[i, default: []].insert(id) } }
        func end(_ i: Int, _ why: String) { state.withLock { $0.ended[i] = why } }
        func count(having id: String) -> Int { state.withLock { $0.got.values.filter { $0.contains(id) }.count } }
        func has(_ i: Int, _ id: String) -> Bool { state.withLock { $0.got[i]?.contains(id) ?? false } }
        var ended: [Int: String] { state.withLock { $0.ended } }
    }

    private func waitUntil(_ what: String, timeout: Duration = .seconds(30), _ ok: () throws -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while try !ok() {
            guard ContinuousClock.now < deadline else { return XCTFail("timed out waiting: \(what)") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Messages (ready + unacknowledged) per queue whose name starts with `prefix`.
    private func queueDepths(_ prefix: String) throws -> [String: (ready: Int, unacked: Int)] {
        var out: [String: (Int, Int)] = [:]
        for line in try Broker.ctl("list_queues", "-q", "--no-table-headers", "name", "messages_ready", "messages_unacknowledged")
            .split(separator: "\n")
        {
            let f = line.split(separator: "\t").map(String.init)
            guard f.count == 3, f[0].hasPrefix(prefix), let r = Int(f[1]), let u = Int(f[2]) else { continue }
            out[f[0]] = (r, u)
        }
        return out
    }

    private func channelCount(of connectionName: String) throws -> Int? {
        let lines = try Broker.ctl("list_connections", "-q", "--no-table-headers", "client_properties", "channels")
        guard let line = lines.split(separator: "\n").first(where: { $0.contains(connectionName) }) else { return nil }
        return line.split(separator: "\t").last.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
    }

    private func publishToEach(_ conn: AMQPConnection, _ queues: [(Int, String)], id: String) async {
        var pending = queues
        for _ in 0..<50 where !pending.isEmpty {
            let results = await conn.publish(contentsOf: pending.map { _, q in
                AMQPOutgoingMessage(exchange: "", routingKey: q, body: Array(id.utf8), properties: AMQPProperties(messageID: id))
            })
            pending = zip(pending, results).filter { $0.1 != nil }.map(\.0)
            if !pending.isEmpty { try? await Task.sleep(for: .milliseconds(100)) }
        }
        XCTAssertTrue(pending.isEmpty, "\(pending.count) publishes not confirmed")
    }

    func testMoreConsumersThanChannelMaxOnOneConnectionSurviveCancelAndRecovery() async throws {
        let n = 2_500
        let name = "amqp-tests-many-consumers"
        let conn = try await AMQPConnection.connect(Broker.configuration(name: name))
        let admin = try await Broker.connect(name: "amqp-tests-many-admin")
        let events = conn.events()
        let base = Broker.uniqueName("many")
        let names = (0..<n).map { "\(base).\($0)" }
        // x-expires: a test killed half-way leaves nothing behind for long.
        try await withThrowingTaskGroup(of: Void.self) { g in
            for q in names {
                g.addTask { try await conn.declareQueue(AMQPQueueDeclaration(name: q, durable: false, arguments: ["x-expires": .int32(300_000)])) }
            }
            try await g.waitForAll()
        }
        let t0 = ContinuousClock.now
        let consumers = try await withThrowingTaskGroup(of: (Int, AMQPConsumer).self) { g in
            for (i, q) in names.enumerated() { g.addTask { (i, try await conn.consume(queue: q, prefetch: 4)) } }
            var out: [Int: AMQPConsumer] = [:]
            for try await (i, c) in g { out[i] = c }
            return out
        }
        let startTime = ContinuousClock.now - t0
        XCTAssertEqual(consumers.count, n)
        let channels = try XCTUnwrap(try channelCount(of: name))
        XCTAssertLessThan(channels, 2_047, "consumers share channels")
        XCTAssertGreaterThan(channels, 2, "more than the control and publish channels")

        let tally = Tally()
        let tasks = consumers.map { i, c in
            Task {
                do {
                    for try await d in c {
                        try? d.ack()
                        tally.add(i, d.properties.messageID ?? "")
                    }
                    tally.end(i, "finished")
                } catch {
                    tally.end(i, (error as? AMQPError)?.code.rawValue ?? "\(error)")
                }
            }
        }
        let all = Array(names.enumerated())
        let t1 = ContinuousClock.now
        await publishToEach(conn, all, id: "r1")
        try await waitUntil("every consumer got r1") { tally.count(having: "r1") == n }
        let roundTime = ContinuousClock.now - t1
        try await waitUntil("every r1 acknowledged") { try queueDepths(base).values.allSatisfy { $0 == (0, 0) } }

        // The broker cancels one consumer (its queue deleted): only it ends.
        let gone = 7
        try await admin.deleteQueue(names[gone])
        try await waitUntil("consumer \(gone) ended") { tally.ended[gone] != nil }
        XCTAssertEqual(tally.ended, [gone: AMQPError.Code.consumerCancelled.rawValue])
        let rest = all.filter { $0.0 != gone }
        await publishToEach(conn, rest, id: "r2")
        try await waitUntil("every other consumer got r2") { tally.count(having: "r2") == n - 1 }

        // Recovery: every consumer subscribes again on the new connection.
        try Broker.ctl("close_all_connections", "wabridge test: many consumers")
        let t2 = ContinuousClock.now
        _ = try await waitForEvent(events, timeout: .seconds(30)) { $0 == .connected(generation: 2) }
        let recoveryTime = ContinuousClock.now - t2
        await publishToEach(conn, rest, id: "r3")
        try await waitUntil("every other consumer got r3") { tally.count(having: "r3") == n - 1 }
        XCTAssertEqual(tally.ended.count, 1, "no other consumer ended: \(tally.ended.prefix(5))")
        try await waitUntil("every r3 acknowledged") {
            try queueDepths(base).filter { $0.key != names[gone] }.values.allSatisfy { $0 == (0, 0) }
        }
        print("shared channels: \(n) consumers started in \(startTime) on \(channels) channels; one round delivered and acked in \(roundTime); recovered in \(recoveryTime)")

        for t in tasks { t.cancel() }
        await withTaskGroup(of: Void.self) { g in
            for (i, c) in consumers where i != gone { g.addTask { try? await c.cancel() } }
        }
        try await withThrowingTaskGroup(of: Void.self) { g in
            for q in names { g.addTask { _ = try? await admin.deleteQueue(q) } }
            try await g.waitForAll()
        }
        await conn.close()
        await admin.close()
    }

    /// Two consumers on one channel, proven by the broker's view.
    private func twoOnOneChannel(_ conn: AMQPConnection, _ base: String) async throws -> (AMQPConsumer, AMQPConsumer, String, String) {
        let q1 = "\(base).a", q2 = "\(base).b"
        for q in [q1, q2] { try await conn.declareQueue(AMQPQueueDeclaration(name: q, durable: false, autoDelete: false)) }
        let c1 = try await conn.consume(queue: q1, prefetch: 10)
        let c2 = try await conn.consume(queue: q2, prefetch: 10)
        let listing = try Broker.ctl("list_consumers", "-q", "--no-table-headers", "queue_name", "channel_pid")
        let pids = Set(listing.split(separator: "\n").map { $0.split(separator: "\t").map(String.init) }
            .filter { $0.count == 2 && ($0[0] == q1 || $0[0] == q2) }.map { $0[1] })
        XCTAssertEqual(pids.count, 1, "both consumers on one channel: \(listing.prefix(300))")
        return (c1, c2, q1, q2)
    }

    func testAFailedSubscribeOnASharedChannelFailsOnlyThatConsumer() async throws {
        let conn = try await Broker.connect(name: "amqp-tests-shared-failure")
        let base = Broker.uniqueName("shared-fail")
        let (c1, c2, q1, q2) = try await twoOnOneChannel(conn, base)
        do {
            _ = try await conn.consume(queue: "\(base).missing")
            XCTFail("consuming a missing queue must fail")
        } catch {
            XCTAssertEqual(error.code, .notFound)
        }
        // The refusal closed the shared channel; its other consumers were subscribed again.
        for q in [q1, q2] { try await conn.publish(AMQPOutgoingMessage(exchange: "", routingKey: q, body: [1])) }
        let got1 = try await collect(c1, count: 1, timeout: .seconds(15))
        let got2 = try await collect(c2, count: 1, timeout: .seconds(15))
        XCTAssertEqual(got1.count + got2.count, 2)
        try await c1.cancel()
        try await c2.cancel()
        for q in [q1, q2] { try await conn.deleteQueue(q) }
        await conn.close()
    }

    func testSettlementsStayWithTheirConsumerOnASharedChannel() async throws {
        let conn = try await Broker.connect(name: "amqp-tests-shared-settle")
        let base = Broker.uniqueName("shared-settle")
        let (c1, c2, q1, q2) = try await twoOnOneChannel(conn, base)
        // Interleaved deliveries: the channel's tags alternate between the two.
        for i in 0..<3 {
            for q in [q1, q2] { try await conn.publish(AMQPOutgoingMessage(exchange: "", routingKey: q, body: [UInt8(i)])) }
        }
        let d1 = try await collect(c1, count: 3, timeout: .seconds(15), ack: false)
        let d2 = try await collect(c2, count: 3, timeout: .seconds(15), ack: false)
        // A multiple ack settles only c1's own deliveries, whatever the tags in between.
        try d1[2].ack(multiple: true)
        try await waitUntil("c1's deliveries acked", timeout: .seconds(10)) { try queueDepths(base)[q1].map { $0 == (0, 0) } ?? false }
        try await Task.sleep(for: .milliseconds(200))
        let depths = try queueDepths(base)
        XCTAssertTrue(depths[q2].map { $0 == (0, 3) } ?? false, "c2's deliveries untouched: \(depths)")

        // Cancelling c2 hands its unsettled deliveries back; c1 goes on receiving.
        try await c2.cancel()
        try await waitUntil("c2's deliveries back in q2", timeout: .seconds(10)) { try queueDepths(base)[q2].map { $0 == (3, 0) } ?? false }
        XCTAssertThrowsError(try d2[0].ack()) { XCTAssertEqual(($0 as? AMQPError)?.code, .staleDelivery) }
        try await conn.publish(AMQPOutgoingMessage(exchange: "", routingKey: q1, body: [9]))
        let more = try await collect(c1, count: 1, timeout: .seconds(15))
        XCTAssertEqual(more.first?.body, [9])
        try await c1.cancel()
        for q in [q1, q2] { try await conn.deleteQueue(q) }
        await conn.close()
    }
}
