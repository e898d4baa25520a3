import AMQP
import Foundation
import XCTest

/// Several broker URLs, against two real brokers (scripts/test.sh starts the
/// second one; under CI these tests fail without it).
final class MultiBrokerTests: XCTestCase {
    private func configuration(_ urls: [String], name: String) throws -> AMQPConfiguration {
        try AMQPConfiguration(
            urls: urls, connectionName: name, connectTimeout: .seconds(5),
            reconnect: .init(initialDelay: .milliseconds(100), maxDelay: .seconds(2)))
    }

    private func connections(_ ctl: (String...) throws -> String) throws -> String {
        try ctl("list_connections", "-q", "--no-table-headers", "client_properties")
    }

    func testAClosedFirstURLFallsThroughToTheSecond() async throws {
        let second = try Broker.url2
        let name = "amqp-tests-multi-first-closed"
        // Port 1 on loopback: nothing listens there, the connect is refused at once.
        let conn = try await AMQPConnection.connect(configuration(["amqp://guest:guest@127.0.0.1:1/", second], name: name))
        let q = Broker.uniqueName("multi-first")
        try await conn.declareQueue(AMQPQueueDeclaration(name: q, durable: false, autoDelete: true))
        XCTAssertTrue(try connections(Broker.ctl2).contains(name), "connected to the second broker")
        XCTAssertFalse(try connections(Broker.ctl).contains(name))
        await conn.close()
    }

    func testNoReachableBrokerFailsNamingEach() async throws {
        let cfg = try configuration(["amqp://guest:secret1@127.0.0.1:1/", "amqp://guest:secret2@127.0.0.1:2/"], name: "amqp-tests-multi-none")
        do {
            _ = try await AMQPConnection.connect(cfg)
            XCTFail("nothing listens on ports 1 and 2")
        } catch {
            XCTAssertEqual(error.code, .connectFailed)
            XCTAssertTrue(error.isRetryable)
            XCTAssertTrue(error.message.contains("127.0.0.1:1") && error.message.contains("127.0.0.1:2"), error.message)
            XCTAssertFalse(error.message.contains("secret"), "no password in the error")
        }
    }

    func testRecoversOntoTheOtherBrokerWhenOneStopsAndRedeclaresItsTopology() async throws {
        let a = try Broker.url2, b = try Broker.url
        let name = "amqp-tests-failover"
        let conn = try await AMQPConnection.connect(configuration([a, b], name: name))
        let events = conn.events()
        XCTAssertTrue(try connections(Broker.ctl2).contains(name), "starts on the first broker")
        let x = Broker.uniqueName("failover-x"), q = Broker.uniqueName("failover-q")
        try await conn.declareExchange(AMQPExchangeDeclaration(name: x, type: .direct, durable: false))
        try await conn.declareQueue(AMQPQueueDeclaration(name: q, durable: false))
        try await conn.bind(AMQPBinding(queue: q, exchange: x, routingKey: "rk"))
        let consumer = try await conn.consume(queue: q, prefetch: 10)
        try await conn.publish(AMQPOutgoingMessage(exchange: x, routingKey: "rk", body: Array("on-a".utf8), mandatory: true))
        let first = try await collect(consumer, count: 1, timeout: .seconds(15))
        XCTAssertEqual(first.map(\.body), [Array("on-a".utf8)])

        try Broker.ctl2("stop_app")
        var restarted = false
        defer { if !restarted { _ = try? Broker.ctl2("start_app") } }
        _ = try await waitForEvent(events, timeout: .seconds(30)) { $0 == .connected(generation: 2) }
        XCTAssertTrue(try connections(Broker.ctl).contains(name), "moved to the second broker")
        XCTAssertTrue(try Broker.ctl("list_queues", "-q", "name").contains(q), "queue declared again there")
        XCTAssertTrue(try Broker.ctl("list_bindings", "-q", "source_name", "destination_name").contains(x), "binding declared again there")
        // Mandatory: an unroutable publish (a binding missing) would fail, not vanish.
        try await conn.publish(AMQPOutgoingMessage(exchange: x, routingKey: "rk", body: Array("on-b".utf8), mandatory: true))
        let second = try await collect(consumer, count: 1, timeout: .seconds(15))
        XCTAssertEqual(second.map(\.body), [Array("on-b".utf8)])

        try Broker.ctl2("start_app")
        restarted = true
        try await consumer.cancel()
        try await conn.deleteQueue(q)
        try await conn.deleteExchange(x)
        await conn.close()
    }
}
