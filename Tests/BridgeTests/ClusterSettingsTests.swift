import AMQP
@testable import Bridge
import Foundation
import XCTest

/// Several broker URLs and quorum queues: the settings, and the queues on the real test broker.
final class ClusterSettingsTests: XCTestCase {
    func testSeveralBrokerURLsAreReadAndEachValidated() throws {
        let one = try BridgeConfiguration.resolve(flags: [.amqpURL: "amqp://u:p@a:5672/"], environment: [:], fileContents: nil)
        XCTAssertEqual(try one.amqpConfiguration().endpoints.map(\.host), ["a"])
        let many = try BridgeConfiguration.resolve(
            flags: [.amqpURL: "amqp://u:p@a:5672/, amqp://u:p@b:5673/vh ,amqps://u:p@c/"], environment: [:], fileContents: nil)
        let amqp = try many.amqpConfiguration()
        XCTAssertEqual(amqp.endpoints.map(\.host), ["a", "b", "c"])
        XCTAssertEqual(amqp.endpoints.map(\.port), [5672, 5673, 5671])
        XCTAssertEqual(amqp.redactedEndpoints, "amqp://u@a:5672/,amqp://u@b:5673/vh,amqps://u@c:5671/")
        XCTAssertFalse(amqp.redactedEndpoints.contains(":p@"))

        for bad in ["amqp://a/,http://b/", "amqp://a/,", ",amqp://a/", "amqp://a/,,amqp://b/"] {
            XCTAssertThrowsError(try BridgeConfiguration.resolve(flags: [.amqpURL: bad], environment: [:], fileContents: nil), bad) {
                let e = $0 as? ConfigurationError
                XCTAssertEqual(e?.code, .invalidValue)
                XCTAssertTrue(e?.message.contains("of") ?? false, "names the URL's position: \(e?.message ?? "")")
            }
        }
        // A URL the AMQP parser refuses is named by position, without its password.
        let weird = try BridgeConfiguration.resolve(flags: [.amqpURL: "amqp://a/,amqp://u:secret@:99999/"], environment: [:], fileContents: nil)
        XCTAssertThrowsError(try weird.amqpConfiguration()) {
            let e = $0 as? AMQPError
            XCTAssertEqual(e?.code, .invalidURL)
            XCTAssertTrue(e?.message.hasPrefix("broker URL 2 of 2") ?? false, e?.message ?? "")
            XCTAssertFalse(e?.message.contains("secret") ?? true)
        }
    }

    func testQueueTypeSetting() throws {
        let d = try BridgeConfiguration.resolve(flags: [:], environment: [:], fileContents: nil)
        XCTAssertEqual(d.topology.queueType, .classic)
        XCTAssertEqual(d.topology.deviceQueueArguments["x-queue-type"], nil, "classic queues keep today's arguments")
        let q = try BridgeConfiguration.resolve(
            flags: [:], environment: ["WABRIDGE_QUEUE_TYPE": "Quorum", "WABRIDGE_QUEUE_DELIVERY_LIMIT": "7"], fileContents: nil)
        XCTAssertEqual(q.topology, BridgeTopology(prefix: "wa", queueType: .quorum, deliveryLimit: 7))
        XCTAssertEqual(q.topology.deviceQueueArguments["x-queue-type"], .string("quorum"))
        XCTAssertEqual(q.topology.deviceQueueArguments["x-delivery-limit"], .int64(7))
        for (k, v) in [("WABRIDGE_QUEUE_TYPE", "stream"), ("WABRIDGE_QUEUE_DELIVERY_LIMIT", "0")] {
            XCTAssertThrowsError(try BridgeConfiguration.resolve(flags: [:], environment: [k: v], fileContents: nil)) {
                XCTAssertEqual(($0 as? ConfigurationError)?.code, .invalidValue)
            }
        }
    }

    /// `rabbitmqctl list_queues name type` → type by queue name.
    private func queueTypes() throws -> [String: String] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try TestBroker.env("WABRIDGE_TEST_RABBITMQCTL"))
        p.arguments = ["list_queues", "-q", "--no-table-headers", "name", "type"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        var types: [String: String] = [:]
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            let f = line.split(separator: "\t").map(String.init)
            if f.count == 2 { types[f[0]] = f[1] }
        }
        return types
    }

    func testQuorumCommandQueuesCarryCommandsAndAMismatchIsATypedError() async throws {
        let conn = try await AMQPConnection.connect(try TestBroker.configuration("bridge-tests-quorum"))
        let prefix = "qq\(UUID().uuidString.prefix(8).lowercased())"
        let quorum = BridgeTopology(prefix: prefix, queueType: .quorum, deliveryLimit: 5)
        try await quorum.declare(on: conn)
        try await quorum.declareDeviceQueue(deviceID: "dev-1", on: conn)
        let types = try queueTypes()
        for q in [quorum.deadQueue, quorum.unroutedQueue, quorum.commandQueue(deviceID: "dev-1")] {
            XCTAssertEqual(types[q], "quorum", q)
        }
        // Declaring again is idempotent.
        try await quorum.declareDeviceQueue(deviceID: "dev-1", on: conn)

        try await conn.publish(AMQPOutgoingMessage(
            exchange: quorum.commandsExchange, routingKey: "dev-1", body: Array(#"{"id":"c1","kind":"device.reconnect"}"#.utf8),
            mandatory: true))
        let consumer = try await conn.consume(queue: quorum.commandQueue(deviceID: "dev-1"), prefetch: 4)
        var got: AMQPDelivery?
        for try await d in consumer {
            got = d
            try d.ack()
            break
        }
        XCTAssertEqual(got.map { String(decoding: $0.body, as: UTF8.self) }, #"{"id":"c1","kind":"device.reconnect"}"#)
        try await consumer.cancel()

        // A classic queue where the setting says quorum (and the other way round) is refused, typed.
        let classic = BridgeTopology(prefix: prefix)
        try await classic.declareDeviceQueue(deviceID: "dev-2", on: conn)
        for (topology, device, setting) in [(quorum, "dev-2", "WABRIDGE_QUEUE_TYPE=quorum"), (classic, "dev-1", "WABRIDGE_QUEUE_TYPE=classic")] {
            do {
                try await topology.declareDeviceQueue(deviceID: device, on: conn)
                XCTFail("\(setting) on an existing queue of the other type must fail")
            } catch {
                XCTAssertEqual(error.code, .queueTypeMismatch)
                XCTAssertFalse(error.isRetryable)
                XCTAssertTrue(error.message.contains(topology.commandQueue(deviceID: device)), error.message)
                XCTAssertTrue(error.message.contains(setting), error.message)
            }
        }
        // The shared queues too: a worker started with the other type stops with the same error.
        do {
            try await classic.declare(on: conn)
            XCTFail("classic declare over quorum dead/unrouted queues must fail")
        } catch {
            XCTAssertEqual(error.code, .queueTypeMismatch)
        }
        // The connection is fine after the refusals.
        try await quorum.declareDeviceQueue(deviceID: "dev-1", on: conn)

        for q in [quorum.deadQueue, quorum.unroutedQueue, quorum.commandQueue(deviceID: "dev-1"), quorum.commandQueue(deviceID: "dev-2")] {
            _ = try? await conn.deleteQueue(q)
        }
        for x in [quorum.commandsExchange, quorum.unroutedExchange, quorum.eventsExchange, quorum.deadExchange] {
            try? await conn.deleteExchange(x)
        }
        await conn.close()
    }
}
