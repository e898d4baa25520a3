import AMQP
import Foundation
import XCTest

final class PublishConsumeTests: XCTestCase {
    func testConfirmRoundTripCarriesEveryProperty() async throws {
        let conn = try await Broker.connect()
        let q = Broker.uniqueName("roundtrip")
        try await conn.declareQueue(AMQPQueueDeclaration(name: q, durable: false, autoDelete: true))
        let headers: AMQPTable = [
            "str": "text", "int": .int32(-7), "long": .int64(1 << 40), "bool": true, "double": .double(2.5),
            "bytes": .bytes([0, 1, 255]), "ts": .timestamp(1_700_000_000), "dec": .decimal(scale: 2, value: 314),
            "nested": .table(["inner": .array([.string("a"), .int64(1), .table(["deep": true])])]),
            "void": .void,
        ]
        let props = AMQPProperties(
            contentType: "application/json", contentEncoding: "identity", headers: headers, deliveryMode: .persistent,
            priority: 3, correlationID: "corr-1", replyTo: "reply.queue", expiration: "60000", messageID: "msg-1",
            timestamp: 1_764_000_000, type: "wabridge.test.v1", userID: "guest", appID: "wabridge", clusterID: "c1")
        try await conn.publish(AMQPOutgoingMessage(exchange: "", routingKey: q, body: Array("hello".utf8), properties: props))

        let consumer = try await conn.consume(queue: q, prefetch: 10)
        let got = try await collect(consumer, count: 1)
        XCTAssertEqual(got[0].body, Array("hello".utf8))
        XCTAssertEqual(got[0].properties, props)
        XCTAssertEqual(got[0].routingKey, q)
        XCTAssertFalse(got[0].redelivered)
        XCTAssertEqual(got[0].consumerTag, consumer.consumerTag)
        await conn.close()
    }

    func testTenThousandPipelinedPublishesAllArriveOnce() async throws {
        let conn = try await Broker.connect()
        let q = Broker.uniqueName("pipeline")
        try await conn.declareQueue(AMQPQueueDeclaration(name: q, durable: true))
        let n = 10_000
        let messages = (0..<n).map { i in
            AMQPOutgoingMessage(
                exchange: "", routingKey: q, body: Array("m\(i)".utf8),
                properties: AMQPProperties(deliveryMode: .persistent, messageID: "\(i)"))
        }
        // Half as one batch, half as concurrent single publishes: both paths pipeline.
        let batchErrors = await conn.publish(contentsOf: Array(messages[..<(n / 2)]))
        XCTAssertEqual(batchErrors.compactMap { $0 }.count, 0)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for m in messages[(n / 2)...] { group.addTask { try await conn.publish(m) } }
            try await group.waitForAll()
        }
        let declared = try await conn.declareQueue(AMQPQueueDeclaration(name: q), passive: true)
        XCTAssertEqual(declared.messageCount, UInt32(n))

        let consumer = try await conn.consume(queue: q, prefetch: 500)
        let got = try await collect(consumer, count: n)
        let ids = got.compactMap { $0.properties.messageID }
        XCTAssertEqual(Set(ids).count, n, "duplicates or losses")
        XCTAssertEqual(Set(ids), Set((0..<n).map(String.init)))
        try await consumer.cancel()
        let remaining = try await conn.deleteQueue(q)
        XCTAssertEqual(remaining, 0)
        await conn.close()
    }

    func testAckNackRequeueAndRejectSemantics() async throws {
        let conn = try await Broker.connect()
        let q = Broker.uniqueName("settle")
        try await conn.declareQueue(AMQPQueueDeclaration(name: q, durable: false, autoDelete: false))
        for body in ["ack", "nack-requeue", "reject-requeue", "reject-drop", "nack-drop"] {
            try await conn.publish(AMQPOutgoingMessage(exchange: "", routingKey: q, body: Array(body.utf8)))
        }
        let consumer = try await conn.consume(queue: q, prefetch: 10)
        var seen: [String: Int] = [:]
        var redeliveredFlags: [String: Bool] = [:]
        var it = consumer.makeAsyncIterator()
        // 5 first deliveries + 2 redeliveries of the requeued ones.
        for _ in 0..<7 {
            guard let d = try await it.next() else { break }
            let body = String(decoding: d.body, as: UTF8.self)
            seen[body, default: 0] += 1
            if seen[body] == 2 { redeliveredFlags[body] = d.redelivered }
            switch (body, seen[body]!) {
            case ("ack", _): try d.ack()
            case ("nack-requeue", 1): try d.nack(requeue: true)
            case ("reject-requeue", 1): try d.reject(requeue: true)
            case ("reject-drop", _): try d.reject(requeue: false)
            case ("nack-drop", _): try d.nack(requeue: false)
            default: try d.ack()
            }
        }
        XCTAssertEqual(seen, ["ack": 1, "nack-requeue": 2, "reject-requeue": 2, "reject-drop": 1, "nack-drop": 1])
        XCTAssertEqual(redeliveredFlags, ["nack-requeue": true, "reject-requeue": true])
        try await consumer.cancel()
        // Nothing else is left: dropped messages are gone, acked ones too.
        let left = try await conn.declareQueue(AMQPQueueDeclaration(name: q, durable: false), passive: true)
        XCTAssertEqual(left.messageCount, 0)
        try await conn.deleteQueue(q)
        await conn.close()
    }

    func testUnackedDeliveriesReturnToTheQueueWhenTheConsumerCancels() async throws {
        let conn = try await Broker.connect()
        let q = Broker.uniqueName("unacked")
        try await conn.declareQueue(AMQPQueueDeclaration(name: q, durable: false))
        for i in 0..<3 { try await conn.publish(AMQPOutgoingMessage(exchange: "", routingKey: q, body: [UInt8(i)])) }
        let c1 = try await conn.consume(queue: q, prefetch: 3)
        let first = try await collect(c1, count: 3, ack: false)
        XCTAssertEqual(first.count, 3)
        try await c1.cancel()
        do {
            try first[0].ack()
            XCTFail("ack on a cancelled consumer's channel must fail")
        } catch {
            XCTAssertEqual(error.code, .staleDelivery)
        }
        let c2 = try await conn.consume(queue: q, prefetch: 3)
        let again = try await collect(c2, count: 3)
        XCTAssertTrue(again.allSatisfy(\.redelivered))
        XCTAssertEqual(Set(again.map(\.body)), [[0], [1], [2]])
        try await conn.deleteQueue(q)
        await conn.close()
    }

    func testDeadLetteringCarriesXDeath() async throws {
        let conn = try await Broker.connect()
        let dlx = Broker.uniqueName("dlx")
        let dead = Broker.uniqueName("dead")
        let work = Broker.uniqueName("work")
        try await conn.declareExchange(AMQPExchangeDeclaration(name: dlx, type: .fanout, durable: false, autoDelete: true))
        try await conn.declareQueue(AMQPQueueDeclaration(name: dead, durable: false, autoDelete: true))
        try await conn.bind(AMQPBinding(queue: dead, exchange: dlx, routingKey: ""))
        try await conn.declareQueue(AMQPQueueDeclaration(
            name: work, durable: false, autoDelete: true, arguments: ["x-dead-letter-exchange": .string(dlx)]))
        try await conn.publish(AMQPOutgoingMessage(
            exchange: "", routingKey: work, body: Array("poison".utf8),
            properties: AMQPProperties(headers: ["x-wabridge-error-code": "BAD"], messageID: "p1")))

        let wc = try await conn.consume(queue: work)
        let d = try await collect(wc, count: 1, ack: false)[0]
        try d.reject(requeue: false)

        let dc = try await conn.consume(queue: dead)
        let dl = try await collect(dc, count: 1)[0]
        XCTAssertEqual(dl.body, Array("poison".utf8))
        XCTAssertEqual(dl.properties.messageID, "p1")
        XCTAssertEqual(dl.properties.headers?["x-wabridge-error-code"], "BAD")
        let death = try XCTUnwrap(dl.properties.headers?["x-death"]?.arrayValue?.first?.tableValue)
        XCTAssertEqual(death["queue"]?.stringValue, work)
        XCTAssertEqual(death["reason"]?.stringValue, "rejected")
        XCTAssertEqual(death["count"]?.int64Value, 1)
        XCTAssertEqual(death["exchange"]?.stringValue, "")
        if case .timestamp = death["time"] {} else { XCTFail("x-death time should be a timestamp") }
        await conn.close()
    }

    func testMandatoryUnroutablePublishIsReturned() async throws {
        let conn = try await Broker.connect()
        let ex = Broker.uniqueName("direct")
        try await conn.declareExchange(AMQPExchangeDeclaration(name: ex, type: .direct, durable: false, autoDelete: false))
        let q = Broker.uniqueName("routed")
        try await conn.declareQueue(AMQPQueueDeclaration(name: q, durable: false, autoDelete: true))
        try await conn.bind(AMQPBinding(queue: q, exchange: ex, routingKey: "yes"))
        // Interleave routable and unroutable publishes: only the latter fail.
        let results = await conn.publish(contentsOf: (0..<20).map { i in
            AMQPOutgoingMessage(exchange: ex, routingKey: i % 2 == 0 ? "yes" : "nowhere", body: [UInt8(i)], mandatory: true)
        })
        for (i, r) in results.enumerated() {
            if i % 2 == 0 {
                XCTAssertNil(r, "message \(i)")
            } else {
                XCTAssertEqual(r?.code, .publishReturned, "message \(i)")
                XCTAssertEqual(r?.replyCode, 312)
            }
        }
        // Without mandatory, an unroutable message is confirmed (and dropped by the broker).
        try await conn.publish(AMQPOutgoingMessage(exchange: ex, routingKey: "nowhere", body: [1]))
        try await conn.deleteExchange(ex)
        await conn.close()
    }

    func testPublishToMissingExchangeFailsAndTheChannelRecovers() async throws {
        let conn = try await Broker.connect()
        do {
            try await conn.publish(AMQPOutgoingMessage(exchange: Broker.uniqueName("missing"), routingKey: "x", body: [1]))
            XCTFail("publish to a missing exchange must fail")
        } catch {
            XCTAssertEqual(error.code, .notFound)
            XCTAssertEqual(error.replyCode, 404)
        }
        let q = Broker.uniqueName("after")
        try await conn.declareQueue(AMQPQueueDeclaration(name: q, durable: false, autoDelete: true))
        try await conn.publish(AMQPOutgoingMessage(exchange: "", routingKey: q, body: [2]))
        let got = try await collect(try await conn.consume(queue: q), count: 1)
        XCTAssertEqual(got[0].body, [2])
        await conn.close()
    }

    func testBrokerCancelNotificationEndsTheConsumer() async throws {
        let conn = try await Broker.connect()
        let events = conn.events()
        let q = Broker.uniqueName("cancelled")
        try await conn.declareQueue(AMQPQueueDeclaration(name: q, durable: false))
        let consumer = try await conn.consume(queue: q)
        let other = try await Broker.connect(name: "amqp-tests-deleter")
        try await other.deleteQueue(q)
        await other.close()
        do {
            for try await _ in consumer {}
            XCTFail("the consumer should end with an error")
        } catch let e as AMQPError {
            XCTAssertEqual(e.code, .consumerCancelled)
        }
        let event = try await waitForEvent(events) { if case .consumerCancelled = $0 { return true } else { return false } }
        XCTAssertEqual(event, .consumerCancelled(consumerTag: consumer.consumerTag, queue: q))
        await conn.close()
    }
}
