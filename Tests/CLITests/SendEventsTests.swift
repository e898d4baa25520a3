import AMQP
import Foundation
import XCTest

/// `wabridge send` and `wabridge events` as processes against the real test
/// broker; the test plays the worker's side of docs/amqp.md.
final class SendEventsTests: XCTestCase {
    private var connection: AMQPConnection!
    private var prefix = ""
    private var url = ""

    override func setUp() async throws {
        url = try CLIProcess.brokerURL()
        prefix = "cli\(UUID().uuidString.prefix(8).lowercased())"
        connection = try await AMQPConnection.connect(try AMQPConfiguration(url: url, connectionName: "cli-tests"))
    }

    override func tearDown() async throws {
        for name in ["commands", "events"] { try? await connection.deleteExchange("\(prefix).\(name)") }
        await connection.close()
    }

    /// A device queue as the worker declares it (non-durable here: the test's own).
    private func deviceQueue(_ routingKey: String) async throws -> AMQPConsumer {
        try await connection.declareExchange(AMQPExchangeDeclaration(name: "\(prefix).commands", type: .direct))
        let queue = "\(prefix).device.\(routingKey).commands"
        try await connection.declareQueue(AMQPQueueDeclaration(name: queue, durable: false, autoDelete: true))
        try await connection.bind(AMQPBinding(queue: queue, exchange: "\(prefix).commands", routingKey: routingKey))
        return try await connection.consume(queue: queue)
    }

    private func answer(_ command: AMQPDelivery, correlationID: String, _ result: String) async throws {
        let replyTo = try XCTUnwrap(command.properties.replyTo)
        try await connection.publish(AMQPOutgoingMessage(
            exchange: "", routingKey: replyTo, body: Array(result.utf8),
            properties: AMQPProperties(contentType: "application/json", correlationID: correlationID)))
    }

    func testSendPublishesAWellFormedCommandAndExitsByTheResult() async throws {
        let commands = try await deviceQueue("d1")
        let send = try CLIProcess.start("wabridge", [
            "send", "--device", "d1", "--to", "+15551234567", "--text", "hello ✓ / \"quoted\"", "--id", "order-1",
            "--reply-to", "3EB0QUOTED", "--amqp-url", url, "--prefix", prefix,
        ])
        let command = try await firstDelivery(commands)
        let delivery = try XCTUnwrap(command, "no command arrived; stderr: \(send.stderr.value)")
        XCTAssertEqual(delivery.exchange, "\(prefix).commands")
        XCTAssertEqual(delivery.routingKey, "d1")
        XCTAssertEqual(delivery.properties.contentType, "application/json")
        XCTAssertEqual(delivery.properties.messageID, "order-1")
        XCTAssertEqual(delivery.properties.correlationID, "order-1")
        XCTAssertEqual(delivery.properties.deliveryMode, .persistent)
        let replyTo = try XCTUnwrap(delivery.properties.replyTo)
        let body = try XCTUnwrap(jsonObject(String(decoding: delivery.body, as: UTF8.self)))
        XCTAssertEqual(body["id"] as? String, "order-1")
        XCTAssertEqual(body["kind"] as? String, "send.text")
        XCTAssertEqual(body["to"] as? String, "+15551234567")
        XCTAssertEqual(body["text"] as? String, "hello ✓ / \"quoted\"")
        XCTAssertEqual((body["reply_to"] as? [String: Any])?["id"] as? String, "3EB0QUOTED")
        XCTAssertEqual(Set(body.keys), ["id", "kind", "to", "text", "reply_to"])

        // The reply queue is the sender's own: another connection may not use it.
        let other = try await AMQPConnection.connect(try AMQPConfiguration(url: url, connectionName: "cli-tests-other"))
        do {
            try await other.declareQueue(AMQPQueueDeclaration(name: replyTo, durable: false, exclusive: true, autoDelete: true), passive: true)
            XCTFail("the reply queue \(replyTo) is not exclusive")
        } catch {
            XCTAssertEqual(error.code, .resourceLocked)
        }
        await other.close()

        // A stray message on the reply queue is not taken for the result.
        try await answer(delivery, correlationID: "someone-else", #"{"command_id":"x","status":"failed","error":{"code":"STRAY"}}"#)
        try await answer(delivery, correlationID: "order-1",
                         #"{"command_id":"order-1","kind":"send.text","status":"sent","message_id":"3EB0SENT","timestamp":"2026-11-25T12:00:00.000Z"}"#)
        try delivery.ack()
        let status = await send.waitExit()
        XCTAssertEqual(status, 0, "stderr: \(send.stderr.value)")
        XCTAssertEqual(send.stdout.lines.count, 1, send.stdout.value)
        XCTAssertEqual(jsonObject(send.stdout.lines.first ?? "")?["message_id"] as? String, "3EB0SENT")
        XCTAssertFalse(send.stdout.value.contains("STRAY"))
    }

    func testSendWithoutDeviceUsesDefaultAndExitsNonZeroOnARejection() async throws {
        let commands = try await deviceQueue("default")
        let send = try CLIProcess.start("wabridge", ["send", "--to", "15551234567@s.whatsapp.net", "--text", "hi", "--prefix", prefix],
                                        env: ["WABRIDGE_AMQP_URL": url])
        let command = try await firstDelivery(commands)
        let delivery = try XCTUnwrap(command, "no command; stderr: \(send.stderr.value)")
        XCTAssertEqual(delivery.routingKey, "default")
        let id = try XCTUnwrap(delivery.properties.messageID)
        XCTAssertNotNil(UUID(uuidString: id), "the default command id is a fresh UUID: \(id)")
        XCTAssertEqual(delivery.properties.correlationID, id)
        XCTAssertEqual(jsonObject(String(decoding: delivery.body, as: UTF8.self))?["id"] as? String, id)
        try await answer(delivery, correlationID: id,
                         #"{"command_id":"\#(id)","kind":"send.text","status":"rejected","error":{"code":"DEVICE_ID_REQUIRED","message":"2 devices"}}"#)
        try delivery.ack()
        let status = await send.waitExit()
        XCTAssertEqual(status, 1)
        XCTAssertTrue(send.stderr.value.contains("DEVICE_ID_REQUIRED"), send.stderr.value)
        XCTAssertEqual(jsonObject(send.stdout.value)?["status"] as? String, "rejected")
    }

    func testSendTimesOutWithoutAResultAndFailsWithoutTopology() async throws {
        _ = try await deviceQueue("d1") // the command is queued; nobody answers
        let timedOut = try await CLIProcess.run("wabridge", [
            "send", "--device", "d1", "--to", "+15551234567", "--text", "hi", "--timeout", "1",
            "--amqp-url", url, "--prefix", prefix,
        ])
        XCTAssertEqual(timedOut.status, 3, timedOut.stderr)
        XCTAssertTrue(timedOut.stderr.contains("TIMEOUT"), timedOut.stderr)
        XCTAssertEqual(timedOut.stdout, "")

        let noTopology = try await CLIProcess.run("wabridge", [
            "send", "--device", "d1", "--to", "+15551234567", "--text", "hi", "--amqp-url", url, "--prefix", prefix + "none",
        ])
        XCTAssertEqual(noTopology.status, 1, noTopology.stderr)
        XCTAssertTrue(noTopology.stderr.contains("amqp.not_found"), noTopology.stderr)

        let noBroker = try await CLIProcess.run("wabridge", [
            "send", "--to", "+15551234567", "--text", "hi", "--amqp-url", "amqp://guest:guest@127.0.0.1:1/",
        ])
        XCTAssertEqual(noBroker.status, 4, noBroker.stderr)
        XCTAssertFalse(noBroker.stderr.contains("guest:guest"), "credentials printed: \(noBroker.stderr)")
    }

    private func publishEvent(_ routingKey: String, _ body: String) async throws {
        try await connection.publish(AMQPOutgoingMessage(
            exchange: "\(prefix).events", routingKey: routingKey, body: Array(body.utf8),
            properties: AMQPProperties(contentType: "application/cloudevents+json", deliveryMode: .persistent)))
    }

    private func event(_ id: String, _ device: String, _ type: String) -> String {
        #"{"specversion":"1.0","id":"\#(id)","source":"wabridge/\#(device)","type":"wabridge.\#(type).v1","data":{}}"#
    }

    func testEventsPrintsOnlyMatchingEventsAsJSONLines() async throws {
        try await connection.declareExchange(AMQPExchangeDeclaration(name: "\(prefix).events", type: .topic))

        // --device: `d1.#`, stopping after --count.
        let byDevice = try CLIProcess.start("wabridge", ["events", "--device", "d1", "--count", "2", "--amqp-url", url, "--prefix", prefix])
        let listening = await byDevice.wait(for: "binding d1.#", in: byDevice.stderr)
        XCTAssertTrue(listening, byDevice.stderr.value)
        try await publishEvent("d2.message.received", event("e0", "d2", "message.received"))
        try await publishEvent("d1.message.received", event("e1", "d1", "message.received"))
        try await publishEvent("d1.connection.state", event("e2", "d1", "connection.state"))
        try await publishEvent("d1.logged_out", event("e3", "d1", "logged_out"))
        let byDeviceStatus = await byDevice.waitExit()
        XCTAssertEqual(byDeviceStatus, 0, byDevice.stderr.value)
        XCTAssertEqual(byDevice.stdout.lines.map { jsonObject($0)?["id"] as? String }, ["e1", "e2"])

        // --type: `*.message.received`, until SIGINT; a multi-line body still prints as one line.
        let byType = try CLIProcess.start("wabridge", ["events", "--type", "wabridge.message.received.v1", "--amqp-url", url, "--prefix", prefix])
        let listeningByType = await byType.wait(for: "binding *.message.received", in: byType.stderr)
        XCTAssertTrue(listeningByType, byType.stderr.value)
        try await publishEvent("d2.connection.state", event("e4", "d2", "connection.state"))
        try await publishEvent("d3.message.status", event("e5", "d3", "message.status"))
        try await publishEvent("d3.message.received", "{\n  \"id\": \"e6\",\n  \"type\": \"wabridge.message.received.v1\"\n}")
        let printed = await byType.wait(for: "e6", in: byType.stdout)
        XCTAssertTrue(printed, byType.stderr.value)
        let byTypeStatus = await byType.stop(signal: SIGINT)
        XCTAssertEqual(byTypeStatus, 0, byType.stderr.value)
        XCTAssertEqual(byType.stdout.lines.map { jsonObject($0)?["id"] as? String }, ["e6"])

        // No filter: `#`; SIGTERM stops it with 0 too.
        let all = try CLIProcess.start("wabridge", ["events", "--amqp-url", url, "--prefix", prefix])
        let listeningAll = await all.wait(for: "binding #", in: all.stderr)
        XCTAssertTrue(listeningAll, all.stderr.value)
        try await publishEvent("d9.login.qr", event("e7", "d9", "login.qr"))
        let printedAll = await all.wait(for: "e7", in: all.stdout)
        XCTAssertTrue(printedAll)
        let allStatus = await all.stop(signal: SIGTERM)
        XCTAssertEqual(allStatus, 0, all.stderr.value)
    }
}
