import AMQP
import Foundation
import XCTest

final class TopologyAndErrorTests: XCTestCase {
    func testExclusiveQueueFromASecondConnectionIsResourceLocked() async throws {
        let owner = try await Broker.connect(name: "amqp-tests-owner")
        let other = try await Broker.connect(name: "amqp-tests-other")
        let q = Broker.uniqueName("exclusive")
        try await owner.declareQueue(AMQPQueueDeclaration(name: q, durable: false, exclusive: true))
        do {
            _ = try await other.consume(queue: q)
            XCTFail("consuming another connection's exclusive queue must fail")
        } catch {
            XCTAssertEqual(error.code, .resourceLocked)
            XCTAssertEqual(error.replyCode, 405)
        }
        do {
            try await other.declareQueue(AMQPQueueDeclaration(name: q, durable: false, exclusive: true))
            XCTFail("redeclaring another connection's exclusive queue must fail")
        } catch {
            XCTAssertEqual(error.code, .resourceLocked)
        }
        // The failing channel closed; the connection still works.
        let q2 = Broker.uniqueName("still-works")
        try await other.declareQueue(AMQPQueueDeclaration(name: q2, durable: false, autoDelete: true))
        await owner.close()
        await other.close()
    }

    func testQueueArgumentsAndPreconditionFailed() async throws {
        let conn = try await Broker.connect()
        let q = Broker.uniqueName("maxlen")
        let args: AMQPTable = ["x-max-length": .int32(3), "x-queue-type": "classic", "x-single-active-consumer": true]
        try await conn.declareQueue(AMQPQueueDeclaration(name: q, durable: true, arguments: args))
        for i in 0..<5 { try await conn.publish(AMQPOutgoingMessage(exchange: "", routingKey: q, body: [UInt8(i)])) }
        let state = try await conn.declareQueue(AMQPQueueDeclaration(name: q), passive: true)
        XCTAssertEqual(state.messageCount, 3, "x-max-length drops from the head")
        // Single active consumer: the second consumer gets nothing while the first lives.
        let c1 = try await conn.consume(queue: q, prefetch: 10)
        let c2 = try await conn.consume(queue: q, prefetch: 10)
        let got = try await collect(c1, count: 3)
        XCTAssertEqual(got.map(\.body), [[2], [3], [4]])
        try await c2.cancel()
        try await c1.cancel()
        do {
            try await conn.declareQueue(AMQPQueueDeclaration(name: q, durable: true, arguments: ["x-max-length": .int32(4)]))
            XCTFail("redeclare with other arguments must fail")
        } catch {
            XCTAssertEqual(error.code, .preconditionFailed)
            XCTAssertEqual(error.replyCode, 406)
            XCTAssertEqual(error.classID, 50)
            XCTAssertEqual(error.methodID, 10)
        }
        let remaining = try await conn.deleteQueue(q)
        XCTAssertEqual(remaining, 0)
        await conn.close()
    }

    func testPassiveDeclareOfMissingEntitiesIsNotFound() async throws {
        let conn = try await Broker.connect()
        do {
            try await conn.declareQueue(AMQPQueueDeclaration(name: Broker.uniqueName("nope")), passive: true)
            XCTFail("passive declare of a missing queue must fail")
        } catch {
            XCTAssertEqual(error.code, .notFound)
        }
        do {
            try await conn.declareExchange(AMQPExchangeDeclaration(name: Broker.uniqueName("nope"), type: .topic), passive: true)
            XCTFail("passive declare of a missing exchange must fail")
        } catch {
            XCTAssertEqual(error.code, .notFound)
        }
        try await conn.declareExchange(AMQPExchangeDeclaration(name: "amq.topic", type: .topic), passive: true)
        await conn.close()
    }

    func testTopicBindingsRouteByPattern() async throws {
        let conn = try await Broker.connect()
        let ex = Broker.uniqueName("events")
        try await conn.declareExchange(AMQPExchangeDeclaration(name: ex, type: .topic, durable: false, autoDelete: true))
        let all = Broker.uniqueName("all"), msgs = Broker.uniqueName("msgs")
        try await conn.declareQueue(AMQPQueueDeclaration(name: all, durable: false, autoDelete: true))
        try await conn.declareQueue(AMQPQueueDeclaration(name: msgs, durable: false, autoDelete: true))
        try await conn.bind(AMQPBinding(queue: all, exchange: ex, routingKey: "sales-1.#"))
        try await conn.bind(AMQPBinding(queue: msgs, exchange: ex, routingKey: "*.message.*"))
        for rk in ["sales-1.message.received", "sales-1.connection.state", "sales-2.message.status"] {
            try await conn.publish(AMQPOutgoingMessage(exchange: ex, routingKey: rk, body: Array(rk.utf8)))
        }
        let a = try await collect(try await conn.consume(queue: all), count: 2).map(\.routingKey)
        let m = try await collect(try await conn.consume(queue: msgs), count: 2).map(\.routingKey)
        XCTAssertEqual(a, ["sales-1.message.received", "sales-1.connection.state"])
        XCTAssertEqual(m, ["sales-1.message.received", "sales-2.message.status"])
        try await conn.unbind(AMQPBinding(queue: all, exchange: ex, routingKey: "sales-1.#"))
        await conn.close()
    }

    func testBadURLsAndWrongCredentialsGiveClearErrors() async throws {
        for bad in ["http://localhost/", "amqp://host:port/", "amqp://host:99999/", "not a url", ""] {
            do {
                _ = try AMQPConfiguration(url: bad)
                XCTFail("\(bad) must be refused")
            } catch {
                XCTAssertEqual(error.code, .invalidURL, bad)
            }
        }
        let good = try AMQPConfiguration.Endpoint(url: "amqps://u%40x:p%2Fw@broker.example:5671/%2Fprod")
        XCTAssertEqual(good, try AMQPConfiguration.Endpoint(url: "amqps://u%40x:p%2Fw@broker.example:5671/%2Fprod"))
        XCTAssertEqual(good.user, "u@x")
        XCTAssertEqual(good.password, "p/w")
        XCTAssertEqual(good.vhost, "/prod")
        XCTAssertTrue(good.tls)
        XCTAssertFalse(good.redacted.contains("p/w"))

        let wrong = try Broker.url.replacingOccurrences(of: "guest:guest", with: "guest:wrong")
        let wrongConfig = try Broker.configuration(url: wrong)
        do {
            _ = try await AMQPConnection.connect(wrongConfig)
            XCTFail("wrong password must fail")
        } catch {
            XCTAssertEqual(error.code, .accessRefused)
            XCTAssertEqual(error.replyCode, 403)
            XCTAssertFalse(error.isRetryable)
            XCTAssertFalse(error.message.contains("wrong"), "the password must not leak into the message")
        }
        let vhost = try Broker.url + "no-such-vhost"
        let vhostConfig = try Broker.configuration(url: vhost)
        do {
            _ = try await AMQPConnection.connect(vhostConfig)
            XCTFail("a missing vhost must fail")
        } catch {
            XCTAssertEqual(error.code, .notAllowed)
        }
        do {
            _ = try await AMQPConnection.connect(try AMQPConfiguration(url: "amqp://guest:guest@127.0.0.1:1/"))
            XCTFail("a closed port must fail")
        } catch {
            XCTAssertEqual(error.code, .connectFailed)
            XCTAssertTrue(error.isRetryable)
        }
    }

    func testConnectionNameIsVisibleToTheBroker() async throws {
        let name = "amqp-tests-\(UUID().uuidString.prefix(6))"
        let conn = try await Broker.connect(name: name)
        let listing = try Broker.ctl("list_connections", "client_properties")
        XCTAssertTrue(listing.contains(name), "connection name missing from: \(listing.prefix(500))")
        XCTAssertTrue(listing.contains("consumer_cancel_notify"))
        await conn.close()
    }

    func testAConnectionNobodyHoldsClosesItself() async throws {
        let name = "amqp-tests-dropped-\(UUID().uuidString.prefix(6))"
        var conn: AMQPConnection? = try await Broker.connect(name: name)
        XCTAssertTrue(try Broker.ctl("list_connections", "client_properties").contains(name))
        XCTAssertNotNil(conn)
        conn = nil
        var stillThere = true
        for _ in 0..<50 where stillThere {
            try await Task.sleep(for: .milliseconds(100))
            stillThere = try Broker.ctl("list_connections", "client_properties").contains(name)
        }
        XCTAssertFalse(stillThere, "a dropped connection must close its socket")
    }

    func testOperationsAfterCloseFailWithoutHanging() async throws {
        let conn = try await Broker.connect()
        await conn.close()
        do {
            try await conn.publish(AMQPOutgoingMessage(exchange: "", routingKey: "x", body: []))
            XCTFail("publish after close must fail")
        } catch {
            XCTAssertEqual(error.code, .connectionClosed)
        }
        await conn.close()  // twice is fine
    }
}
