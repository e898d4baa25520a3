import AMQP
@testable import Bridge
import BridgeStore
import Foundation
import Logging
import Synchronization
import WABinary
import WAClient
import WASim
import XCTest

/// Collects recorded events in memory (the outbox implementation lives with the events half).
final class RecordingEvents: EventRecording {
    private let events = Mutex<[CloudEvent]>([])
    func record(_ event: CloudEvent) async throws {
        events.withLock { all in
            if !all.contains(where: { $0.id == event.id }) { all.append(event) }
        }
    }
    var all: [CloudEvent] { events.withLock { $0 } }
}

/// Counts log messages (the service's own view of what it did).
final class LogCapture: Sendable {
    private let messages = Mutex<[String]>([])
    func add(_ m: String) { messages.withLock { $0.append(m) } }
    func count(of m: String) -> Int { messages.withLock { $0.filter { $0 == m }.count } }

    struct Handler: LogHandler {
        let capture: LogCapture
        var logLevel: Logger.Level = .debug
        var metadata: Logger.Metadata = [:]
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) { capture.add(event.message.description) }
    }

    var logger: Logger { Logger(label: "wabridge.commands.test") { _ in Handler(capture: self) } }
}

/// Collects every delivery of a queue (acknowledged) in the background.
final class QueueCollector: Sendable {
    private let got = Mutex<[AMQPDelivery]>([])
    private let task: Mutex<Task<Void, Never>?> = Mutex(nil)

    init(_ consumer: AMQPConsumer) {
        let t = Task { [self] in
            do {
                for try await d in consumer {
                    self.got.withLock { $0.append(d) }
                    try? d.ack()
                }
            } catch {}
        }
        task.withLock { $0 = t }
    }

    var all: [AMQPDelivery] { got.withLock { $0 } }
    func stop() { task.withLock { $0?.cancel() } }
}

func env(_ name: String) throws -> String {
    guard let v = ProcessInfo.processInfo.environment[name], !v.isEmpty else {
        throw XCTestError(.failureWhileWaiting, userInfo: [NSLocalizedDescriptionKey: "\(name) is not set: start the test broker (scripts/test-broker.sh)"])
    }
    return v
}

/// Polls `condition` until it holds; fails after `seconds` (a safety bound, not a timing claim).
func eventually(_ seconds: Double, _ what: String, _ condition: @Sendable () async throws -> Bool) async throws {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    throw XCTestError(.timeoutWhileWaiting, userInfo: [NSLocalizedDescriptionKey: "not within \(seconds) s: \(what)"])
}

/// A simulator, a device manager, the command service on a real broker with a
/// private prefix, and the test's own broker connection with reply and dead-letter collectors.
struct CommandRig {
    let h: DeviceHarness
    let manager: DeviceManager
    let topology: BridgeTopology
    let events: RecordingEvents
    let serviceConnection: AMQPConnection
    let client: AMQPConnection
    let service: Task<Void, any Error>
    let replyQueue: String
    let replies: QueueCollector
    let dead: QueueCollector
    let log: LogCapture

    static func start(_ settings: CommandSettings = CommandSettings(commandWait: .seconds(1), sendRate: 50, sendBurst: 50,
                                                                 retryBackoff: .milliseconds(200))) async throws -> CommandRig {
        let h = try await DeviceHarness.start()
        let manager = try await h.manager()
        let prefix = "tc\(UUID().uuidString.prefix(8).lowercased())"
        let topology = BridgeTopology(prefix: prefix)
        let config = try AMQPConfiguration(url: try env("WABRIDGE_TEST_AMQP_URL"), heartbeat: 30, connectionName: "cmd-tests",
                                           reconnect: .init(initialDelay: .milliseconds(100), maxDelay: .seconds(1)))
        let serviceConnection = try await AMQPConnection.connect(config)
        let client = try await AMQPConnection.connect(config)
        let events = RecordingEvents()
        let log = LogCapture()
        let svc = CommandService(connection: { serviceConnection }, manager: manager, events: events, topology: topology,
                                 settings: settings, logger: log.logger)
        let service = Task { try await svc.run() }
        // The service declares the topology; wait for it to consume the unrouted queue.
        try await eventually(20, "unrouted consumer") {
            (try? await client.declareQueue(AMQPQueueDeclaration(name: topology.unroutedQueue), passive: true).consumerCount) == 1
        }
        let replyQueue = "\(prefix).replies"
        try await client.declareQueue(AMQPQueueDeclaration(name: replyQueue, durable: false, autoDelete: false))
        let replies = QueueCollector(try await client.consume(queue: replyQueue, prefetch: 100))
        let dead = QueueCollector(try await client.consume(queue: topology.deadQueue, prefetch: 100))
        return CommandRig(h: h, manager: manager, topology: topology, events: events, serviceConnection: serviceConnection,
                          client: client, service: service, replyQueue: replyQueue, replies: replies, dead: dead, log: log)
    }

    /// Creates and links a device by QR; returns its JID once connected and its queue consumed.
    func link(_ id: String, phone: String) async throws -> JID {
        _ = try await manager.create(id: id)
        await h.sim.createPhone(number: phone)
        let qr = try await within(15) { try await manager.startQRLogin(id) }
        let jid = try await within(15) { try await h.sim.scanQR(phone: phone, qr: qr.text) }
        try await manager.waitForState(id, .connected, timeout: .seconds(15))
        try await waitForConsumer(id)
        return jid
    }

    func waitForConsumer(_ id: String) async throws {
        let queue = topology.commandQueue(deviceID: id)
        try await eventually(15, "consumer on \(queue)") {
            (try? await client.declareQueue(AMQPQueueDeclaration(name: queue, arguments: topology.deviceQueueArguments),
                                            passive: true).consumerCount) == 1
        }
    }

    func queueExists(_ id: String) async -> Bool {
        (try? await client.declareQueue(AMQPQueueDeclaration(name: topology.commandQueue(deviceID: id)), passive: true)) != nil
    }

    /// Publishes a command to `<p>.commands` (retrying while the test's connection reconnects).
    func send(_ body: [UInt8], to routingKey: String, contentType: String? = "application/json", messageID: String? = nil,
              correlationID: String? = nil, reply: Bool = true) async throws {
        let props = AMQPProperties(contentType: contentType, deliveryMode: .persistent, correlationID: correlationID,
                                   replyTo: reply ? replyQueue : nil, messageID: messageID)
        let message = AMQPOutgoingMessage(exchange: topology.commandsExchange, routingKey: routingKey, body: body, properties: props)
        for attempt in 0..<50 {
            do {
                try await client.publish(message)
                return
            } catch {
                guard error.isRetryable, attempt < 49 else { throw error }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    func send(_ command: JSONValue, to routingKey: String, correlationID: String? = nil) async throws {
        try await send(Array(command.encoded()), to: routingKey, correlationID: correlationID)
    }

    /// The parsed replies whose `command_id` is `id`.
    func replies(for id: String) -> [JSONValue] {
        replies.all.compactMap { JSONValue.parse(Data($0.body)) }.filter { $0["command_id"]?.stringValue == id }
    }

    func reply(for id: String, within seconds: Double = 20) async throws -> JSONValue {
        try await eventually(seconds, "reply for \(id)") { !replies(for: id).isEmpty }
        return replies(for: id)[0]
    }

    func deadLetter(code: String) -> [AMQPDelivery] {
        dead.all.filter { $0.properties.headers?["x-wabridge-error-code"]?.stringValue == code }
    }

    func stop() async {
        service.cancel()
        _ = await service.result
        replies.stop()
        dead.stop()
        await manager.shutdown()
        await client.close()
        await serviceConnection.close()
        await h.shutdown()
    }
}

final class CommandServiceTests: XCTestCase {
    func text(_ id: String, to: String, _ body: String) -> JSONValue {
        ["id": .string(id), "kind": "send.text", "to": .string(to), "text": .string(body)]
    }

    /// send.text by AMQP reaches the phone, with a reply and queued/sent events carrying the
    /// correlation id; the same id three times sends once and answers three identical results;
    /// reaction, edit, revoke and read reach the phone.
    func testSendTextRepliesEventsIdempotencyAndOtherKinds() async throws {
        let rig = try await CommandRig.start()
        let me = "15550310001", peer = "15550310002"
        let jid = try await rig.link("d1", phone: me)
        await rig.h.sim.createPhone(number: peer)

        try await rig.send(text("t1", to: "+\(peer)", "hello phone"), to: "d1", correlationID: "corr-1")
        let r1 = try await rig.reply(for: "t1")
        let expectedID = MessageID.derived(idempotencyKey: "t1", device: jid)
        XCTAssertEqual(r1["status"], "sent")
        XCTAssertEqual(r1["kind"], "send.text")
        XCTAssertEqual(r1["message_id"]?.stringValue, expectedID, "the WhatsApp id is derived from the command id")
        XCTAssertNotNil(r1["timestamp"]?.stringValue)
        let replyDelivery = try XCTUnwrap(rig.replies.all.first)
        XCTAssertEqual(replyDelivery.properties.correlationID, "corr-1")
        XCTAssertEqual(replyDelivery.properties.contentType, "application/json")
        try await eventually(10, "phone decrypted t1") {
            await rig.h.sim.receivedMessages(phone: peer).contains { $0.id == expectedID && $0.text == "hello phone" && !$0.isFromMe }
        }
        let statuses = rig.events.all.filter { $0.type == .messageStatus && $0.data["command_id"] == "t1" }
        XCTAssertEqual(statuses.map { $0.data["status"]?.stringValue ?? "" }, ["queued", "sent"])
        for e in statuses {
            XCTAssertEqual(e.correlationID, "corr-1")
            XCTAssertEqual(e.deviceID.rawValue, "d1")
            XCTAssertEqual(e.data["message_id"]?.stringValue, expectedID)
            XCTAssertEqual(e.data["chat"]?.stringValue, "\(peer)@s.whatsapp.net")
        }
        let stored = try await rig.h.store().device(DeviceID("d1")).data.commandResult("t1")
        XCTAssertEqual(stored?.correlationID, "corr-1")
        XCTAssertEqual(stored?.messageID, expectedID)

        // The same command twice more: the recorded result, no new message.
        try await rig.send(text("t1", to: "+\(peer)", "hello phone"), to: "d1", correlationID: "corr-1")
        try await rig.send(text("t1", to: "+\(peer)", "hello phone"), to: "d1", correlationID: "corr-1")
        try await eventually(20, "three results for t1") { rig.replies(for: "t1").count == 3 }
        let bodies = Set(rig.replies.all.filter { JSONValue.parse(Data($0.body))?["command_id"] == "t1" }.map(\.body))
        XCTAssertEqual(bodies.count, 1, "three identical results")
        // A later message arrives after any duplicate would have: t1 is there once.
        try await rig.send(text("t2", to: "+\(peer)", "second"), to: "d1")
        let r2 = try await rig.reply(for: "t2")
        let t2ID = try XCTUnwrap(r2["message_id"]?.stringValue)
        try await eventually(10, "phone decrypted t2") { await rig.h.sim.receivedMessages(phone: peer).contains { $0.id == t2ID } }
        let copies = await rig.h.sim.receivedMessages(phone: peer).filter { $0.id == expectedID && !$0.isFromMe }.count
        XCTAssertEqual(copies, 1, "one message on the phone for three deliveries of t1")

        // Reaction, edit, revoke of t1.
        let chat = "\(peer)@s.whatsapp.net"
        try await rig.send(["id": "re1", "kind": "send.reaction", "chat": .string(chat), "message_id": .string(expectedID),
                            "emoji": "👍", "from_me": true], to: "d1")
        try await rig.send(["id": "ed1", "kind": "message.edit", "chat": .string(chat), "message_id": .string(expectedID),
                            "text": "hello, edited"], to: "d1")
        try await rig.send(["id": "rv1", "kind": "message.revoke", "chat": .string(chat), "message_id": .string(expectedID)],
                           to: "d1")
        for id in ["re1", "ed1", "rv1"] {
            let r = try await rig.reply(for: id)
            XCTAssertEqual(r["status"], "sent", "\(id): \(r)")
        }
        try await eventually(10, "reaction, edit and revoke at the phone") {
            let got = await rig.h.sim.receivedMessages(phone: peer).filter { !$0.isFromMe && $0.ref == expectedID }
            return Set(got.map(\.kind)) == ["reaction", "edit", "revoke"]
        }
        let atPhone = await rig.h.sim.receivedMessages(phone: peer).filter { !$0.isFromMe && $0.ref == expectedID }
        XCTAssertEqual(atPhone.map(\.kind), ["reaction", "edit", "revoke"], "in queue order")
        XCTAssertEqual(atPhone.first { $0.kind == "reaction" }?.text, "👍")
        XCTAssertEqual(atPhone.first { $0.kind == "edit" }?.text, "hello, edited")

        // Read: the phone's message to us shows as read on the phone.
        let incoming = try await rig.h.sim.sendText(from: peer, to: jid.nonAD, text: "read me")
        try await rig.send(["id": "rd1", "kind": "message.read", "chat": .string("+\(peer)"), "message_ids": [.string(incoming)]],
                           to: "d1")
        let rd = try await rig.reply(for: "rd1")
        XCTAssertEqual(rd["status"], "sent")
        try await eventually(10, "phone sees read") { await rig.h.sim.messageStatus(phone: peer, id: incoming) == .read }

        // device.reconnect, then a send on the new link; device.logout unlinks.
        try await rig.send(["id": "rc1", "kind": "device.reconnect"], to: "d1")
        let rc = try await rig.reply(for: "rc1")
        XCTAssertEqual(rc["status"], "done")
        try await rig.send(text("t3", to: "+\(peer)", "after reconnect"), to: "d1")
        let r3 = try await rig.reply(for: "t3")
        XCTAssertEqual(r3["status"], "sent")
        try await rig.send(["id": "lo1", "kind": "device.logout"], to: "d1")
        let lo = try await rig.reply(for: "lo1")
        XCTAssertEqual(lo["status"], "done")
        let after = try await rig.manager.get("d1")
        XCTAssertEqual(after.state, .loggedOut)
        XCTAssertTrue(rig.dead.all.isEmpty, "nothing refused")
        await rig.stop()
    }

    /// Every bad-input class is dead-lettered with its code, recorded as command.rejected and
    /// answered; the good command behind them still goes out.
    func testBadInputsAreDeadLetteredAndTheQueueGoesOn() async throws {
        let rig = try await CommandRig.start()
        let me = "15550320001", peer = "15550320002"
        _ = try await rig.link("d2", phone: me)
        await rig.h.sim.createPhone(number: peer)

        try await rig.send(Array("not json".utf8), to: "d2", messageID: "bad-json")
        try await rig.send(Array(text("bad-ct", to: "+\(peer)", "x").encoded()), to: "d2", contentType: "text/plain")
        try await rig.send(["kind": "send.text", "to": .string("+\(peer)"), "text": "x"], to: "d2")
        try await rig.send(["id": "bad-kind", "kind": "bogus"], to: "d2")
        try await rig.send(["id": "bad-schema", "kind": "send.text", "to": .string("+\(peer)"), "text": ""], to: "d2")
        try await rig.send(text("bad-jid", to: "somebody", "x"), to: "d2")
        try await rig.send(text("bad-send", to: "+15550329999", "nobody has this number"), to: "d2")
        try await rig.send(text("bad-device", to: "+\(peer)", "x"), to: "ghost")
        try await rig.send(text("good", to: "+\(peer)", "still goes out"), to: "d2")

        let good = try await rig.reply(for: "good")
        XCTAssertEqual(good["status"], "sent")
        let goodID = try XCTUnwrap(good["message_id"]?.stringValue)
        try await eventually(10, "the good one at the phone") {
            await rig.h.sim.receivedMessages(phone: peer).contains { $0.id == goodID && $0.text == "still goes out" }
        }
        let expected: [(CommandErrorCode, String?, String)] = [
            (.invalidJSON, nil, "d2"), (.invalidContentType, nil, "d2"), (.missingID, nil, "d2"),
            (.unknownKind, "bad-kind", "d2"), (.schemaViolation, "bad-schema", "d2"), (.invalidJID, "bad-jid", "d2"),
            (.sendFailed, "bad-send", "d2"), (.deviceNotFound, "bad-device", "ghost"),
        ]
        try await eventually(20, "eight dead letters") { rig.dead.all.count == expected.count }
        for (code, id, key) in expected {
            let dl = rig.deadLetter(code: code.rawValue)
            XCTAssertEqual(dl.count, 1, "\(code.rawValue) dead-lettered once")
            guard let d = dl.first else { continue }
            XCTAssertFalse((d.properties.headers?["x-wabridge-error"]?.stringValue ?? "").isEmpty)
            XCTAssertEqual(d.properties.headers?["x-wabridge-routing-key"]?.stringValue, key)
            XCTAssertEqual(d.properties.replyTo, rig.replyQueue, "original properties kept")
            let rejected = rig.events.all.filter {
                $0.type == .commandRejected && $0.data["error"]?["code"]?.stringValue == code.rawValue
            }
            XCTAssertEqual(rejected.count, 1, "command.rejected for \(code.rawValue)")
            XCTAssertEqual(rejected.first?.deviceID.rawValue, key)
            XCTAssertEqual(rejected.first?.data["routing_key"]?.stringValue, key)
            if let id {
                XCTAssertEqual(rejected.first?.data["command_id"]?.stringValue, id)
                let r = try await rig.reply(for: id)
                XCTAssertEqual(r["status"]?.stringValue, code == .sendFailed ? "failed" : "rejected")
                XCTAssertEqual(r["error"]?["code"]?.stringValue, code.rawValue)
            }
        }
        XCTAssertEqual(rig.deadLetter(code: "INVALID_JSON").first?.body, Array("not json".utf8), "original body kept")
        XCTAssertEqual(rig.deadLetter(code: "INVALID_CONTENT_TYPE").first?.properties.contentType, "text/plain")
        let failed = rig.events.all.filter { $0.type == .messageStatus && $0.data["command_id"] == "bad-send" }
        XCTAssertEqual(failed.map { $0.data["status"]?.stringValue ?? "" }, ["queued", "failed"])
        await rig.stop()
    }

    /// The link drops (simulator fault): commands wait and go out in order. The broker drops
    /// every connection: the device's consumer is back and takes the next command. A device
    /// that is not connected refuses after the configured wait.
    func testCommandsWaitForTheLinkAndSurviveABrokerDrop() async throws {
        let rig = try await CommandRig.start()
        let me = "15550330001", peer = "15550330002"
        let jid = try await rig.link("d3", phone: me)
        await rig.h.sim.createPhone(number: peer)

        // Slow answers keep the device reconnecting for a while after the drop, so the
        // commands below arrive while it is down (they must wait, not fail).
        await rig.h.sim.inject(.slowAnswers(.milliseconds(700)), device: jid)
        await rig.h.sim.inject(.dropConnection, device: jid)
        try await eventually(10, "the device noticed the drop") {
            let state = try await rig.manager.get("d3").state
            return state == .reconnecting || state == .connecting
        }
        for i in 1...3 { try await rig.send(text("w\(i)", to: "+\(peer)", "waiting \(i)"), to: "d3") }
        await rig.h.sim.inject(.slowAnswers(nil), device: jid)
        var ids: [String] = []
        for i in 1...3 {
            let r = try await rig.reply(for: "w\(i)", within: 40)
            XCTAssertEqual(r["status"], "sent", "w\(i): \(r)")
            ids.append(r["message_id"]?.stringValue ?? "")
        }
        let sentIDs = ids
        try await eventually(10, "three at the phone") {
            await rig.h.sim.receivedMessages(phone: peer).filter { sentIDs.contains($0.id) && !$0.isFromMe }.count == 3
        }
        let order = await rig.h.sim.receivedMessages(phone: peer).filter { sentIDs.contains($0.id) && !$0.isFromMe }.map(\.id)
        XCTAssertEqual(order, sentIDs, "in queue order")

        // Broker drop: every connection closed; both reconnect and the consumer is resubscribed.
        let ctl = Process()
        ctl.executableURL = URL(fileURLWithPath: try env("WABRIDGE_TEST_RABBITMQCTL"))
        ctl.arguments = ["close_all_connections", "test: broker drop"]
        ctl.standardOutput = FileHandle.nullDevice
        ctl.standardError = FileHandle.nullDevice
        try ctl.run()
        ctl.waitUntilExit()
        XCTAssertEqual(ctl.terminationStatus, 0)
        try await rig.waitForConsumer("d3")
        try await rig.send(text("after-drop", to: "+\(peer)", "after the broker drop"), to: "d3")
        let r = try await rig.reply(for: "after-drop", within: 40)
        XCTAssertEqual(r["status"], "sent")

        // A device that never linked: DEVICE_NOT_CONNECTED after the (1 s) wait.
        _ = try await rig.manager.create(id: "idle")
        try await rig.waitForConsumer("idle")
        try await rig.send(text("to-idle", to: "+\(peer)", "x"), to: "idle")
        let refused = try await rig.reply(for: "to-idle")
        XCTAssertEqual(refused["status"], "rejected")
        XCTAssertEqual(refused["error"]?["code"], "DEVICE_NOT_CONNECTED")
        XCTAssertEqual(rig.deadLetter(code: "DEVICE_NOT_CONNECTED").first?.properties.headers?["x-wabridge-device"]?.stringValue, "idle")
        await rig.stop()
    }

    /// `default` with 0, 1 and 2 devices; a device created at run time gets its queue (and a
    /// consumer), a deleted one loses it.
    func testDefaultRoutingAndQueueLifecycle() async throws {
        let rig = try await CommandRig.start(CommandSettings(commandWait: .milliseconds(300), sendRate: 50, sendBurst: 50,
                                                             retryBackoff: .milliseconds(200)))
        try await rig.send(text("none", to: "+15550340002", "x"), to: "default")
        let none = try await rig.reply(for: "none")
        XCTAssertEqual(none["error"]?["code"], "DEVICE_NOT_FOUND")

        _ = try await rig.manager.create(id: "solo")
        let exists = await rig.queueExists("solo")
        XCTAssertTrue(exists, "declared by the time create returns")
        try await rig.waitForConsumer("solo")
        for i in 1...3 { try await rig.send(text("def\(i)", to: "+15550340002", "x"), to: "default") }
        for i in 1...3 {
            let r = try await rig.reply(for: "def\(i)")
            XCTAssertEqual(r["error"]?["code"], "DEVICE_NOT_CONNECTED", "served by the only device: \(r)")
        }
        let served = rig.deadLetter(code: "DEVICE_NOT_CONNECTED")
        XCTAssertEqual(served.compactMap { JSONValue.parse(Data($0.body))?["id"]?.stringValue }, ["def1", "def2", "def3"],
                       "default commands keep their order")
        for d in served {
            XCTAssertEqual(d.properties.headers?["x-wabridge-device"]?.stringValue, "solo")
            XCTAssertEqual(d.properties.headers?["x-wabridge-routing-key"]?.stringValue, "default")
        }

        _ = try await rig.manager.create(id: "second")
        try await rig.waitForConsumer("second")
        try await rig.send(text("two", to: "+15550340002", "x"), to: "default")
        let two = try await rig.reply(for: "two")
        XCTAssertEqual(two["error"]?["code"], "DEVICE_ID_REQUIRED")

        try await rig.manager.delete("second")
        let gone = await rig.queueExists("second")
        XCTAssertFalse(gone, "the deleted device's queue is gone")
        try await rig.send(text("to-deleted", to: "+15550340002", "x"), to: "second")
        let deleted = try await rig.reply(for: "to-deleted")
        XCTAssertEqual(deleted["error"]?["code"], "DEVICE_NOT_FOUND")
        let rejected = rig.events.all.filter { $0.type == .commandRejected }.compactMap { $0.data["error"]?["code"]?.stringValue }
        XCTAssertEqual(rejected.filter { $0 == "DEVICE_ID_REQUIRED" }.count, 1)
        XCTAssertEqual(rejected.filter { $0 == "DEVICE_NOT_FOUND" }.count, 2)
        await rig.stop()
    }
}

extension CommandServiceTests {
    /// The dead-letter exchange is missing (broker trouble): the refused command is handed
    /// back, not lost, and dead-lettered once the exchange is there again.
    func testARefusalWhoseDeadLetterFailsIsRetriedNotLost() async throws {
        let rig = try await CommandRig.start()
        _ = try await rig.manager.create(id: "x")
        try await rig.waitForConsumer("x")
        try await rig.client.deleteExchange(rig.topology.deadExchange)
        try await rig.send(Array("poison".utf8), to: "x", messageID: "p1")
        // Handed back at least twice (each attempt fails the publish), still not answered.
        try await eventually(20, "handed back twice") { rig.log.count(of: "command handed back to the broker") >= 2 }
        XCTAssertTrue(rig.events.all.isEmpty, "no event before the dead-letter copy is confirmed")
        XCTAssertTrue(rig.replies.all.isEmpty, "no answer before the dead-letter copy is confirmed")
        try await rig.client.declareExchange(AMQPExchangeDeclaration(name: rig.topology.deadExchange, type: .fanout))
        try await rig.client.bind(AMQPBinding(queue: rig.topology.deadQueue, exchange: rig.topology.deadExchange, routingKey: ""))
        try await eventually(20, "dead-lettered") { rig.dead.all.count == 1 }
        try await eventually(20, "answered") { rig.replies.all.count == 1 }
        XCTAssertEqual(rig.dead.all.first?.body, Array("poison".utf8))
        XCTAssertEqual(rig.dead.all.first?.properties.headers?["x-wabridge-error-code"]?.stringValue, "INVALID_JSON")
        XCTAssertEqual(rig.events.all.filter { $0.type == .commandRejected }.count, 1)
        await rig.stop()
    }
}

extension CommandServiceTests {
    /// Two workers on one device queue: both subscribe, the broker lets one consume
    /// (single active consumer), so a device's commands are never worked in parallel.
    func testTwoWorkersShareADeviceQueueWithOneActiveConsumer() async throws {
        let rig = try await CommandRig.start()
        let config = try AMQPConfiguration(url: try env("WABRIDGE_TEST_AMQP_URL"), connectionName: "cmd-tests-2")
        let second = try await AMQPConnection.connect(config)
        let other = CommandService(connection: { second }, manager: rig.manager, events: rig.events, topology: rig.topology,
                                   settings: CommandSettings(commandWait: .seconds(1)))
        let otherTask = Task { try await other.run() }
        _ = try await rig.manager.create(id: "shared")
        let queue = rig.topology.commandQueue(deviceID: "shared")
        try await eventually(15, "two consumers on \(queue)") {
            (try? await rig.client.declareQueue(AMQPQueueDeclaration(name: queue), passive: true).consumerCount) == 2
        }
        let ctl = Process()
        ctl.executableURL = URL(fileURLWithPath: try env("WABRIDGE_TEST_RABBITMQCTL"))
        ctl.arguments = ["list_consumers", "--no-table-headers", "--silent", "queue_name", "active"]
        let out = Pipe()
        ctl.standardOutput = out
        ctl.standardError = FileHandle.nullDevice
        try ctl.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        ctl.waitUntilExit()
        let rows = text.split(separator: "\n").map { $0.split(whereSeparator: { $0 == "\t" || $0 == " " }).map(String.init) }
            .filter { $0.first == queue }
        XCTAssertEqual(rows.count, 2, text)
        XCTAssertEqual(rows.filter { $0.last == "true" }.count, 1, "one active consumer: \(text)")
        otherTask.cancel()
        _ = await otherTask.result
        await second.close()
        await rig.stop()
    }
}

extension CommandServiceTests {
    /// A paced burst goes out in pipelined runs; the device logs out half-way. Every
    /// command ends with a result, and every message whose `queued` was recorded ends
    /// its statuses with `sent` or `failed`, never at `queued`.
    func testAPacedBurstCutByALogoutEndsEveryQueuedMessage() async throws {
        let rig = try await CommandRig.start(CommandSettings(commandWait: .milliseconds(500), sendRate: 4, sendBurst: 3,
                                                             retryBackoff: .milliseconds(200)))
        let me = "15550360001", peer = "15550360002"
        _ = try await rig.link("d6", phone: me)
        await rig.h.sim.createPhone(number: peer)
        let count = 12
        for i in 0..<count { try await rig.send(text("b\(i)", to: "+\(peer)", "burst \(i)"), to: "d6") }
        try await eventually(20, "the first run went out") { !rig.replies(for: "b2").isEmpty }
        try await rig.manager.logout("d6")
        var sent = 0
        for i in 0..<count {
            let r = try await rig.reply(for: "b\(i)", within: 40)
            if r["status"] == "sent" { sent += 1 } else {
                XCTAssertEqual(r["error"]?["code"], "DEVICE_NOT_CONNECTED", "b\(i): \(r)")
            }
        }
        XCTAssertGreaterThanOrEqual(sent, 3, "the first run (the burst of 3) went out")
        XCTAssertLessThan(sent, count, "the logout cut the burst")
        let statuses = rig.events.all.filter { $0.type == .messageStatus && $0.data["command_id"] != nil }
        for i in 0..<count {
            let mine = statuses.filter { $0.data["command_id"] == .string("b\(i)") }.map { $0.data["status"]?.stringValue ?? "" }
            if mine.contains("queued") {
                XCTAssertTrue(mine.last == "sent" || mine.last == "failed" || mine.contains("sent"),
                              "b\(i) was queued and must end sent or failed: \(mine)")
            }
        }
        await rig.stop()
    }
}
