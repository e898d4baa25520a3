import AMQP
@testable import Bridge
import BridgeStore
import Foundation
import Synchronization
import WABinary
import WAClient
import WASim
import XCTest

/// The private test broker (scripts/test-broker.sh); tests fail, never skip, without it.
enum TestBroker {
    static func env(_ name: String) throws -> String {
        guard let v = ProcessInfo.processInfo.environment[name], !v.isEmpty else {
            throw XCTestError(.failureWhileWaiting, userInfo: [NSLocalizedDescriptionKey: "\(name) unset: start the test broker"])
        }
        return v
    }

    static func configuration(_ name: String) throws -> AMQPConfiguration {
        try AMQPConfiguration(url: try env("WABRIDGE_TEST_AMQP_URL"), connectionName: name,
                              reconnect: .init(initialDelay: .milliseconds(100), maxDelay: .seconds(1)))
    }

    /// rabbitmqctl against the test broker.
    static func ctl(_ args: String...) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try env("WABRIDGE_TEST_RABBITMQCTL"))
        p.arguments = args
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw XCTestError(.failureWhileWaiting, userInfo: [NSLocalizedDescriptionKey: "rabbitmqctl \(args) exited \(p.terminationStatus)"])
        }
    }
}

/// Polls `condition` until true; fails after `seconds` (a safety bound, not a timing expectation).
func waitUntil(_ seconds: Double, _ what: String, _ condition: @escaping @Sendable () async throws -> Bool) async throws {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    throw XCTestError(.timeoutWhileWaiting, userInfo: [NSLocalizedDescriptionKey: "timed out waiting for \(what)"])
}

func userJID(_ number: String) -> JID { JID(user: number, server: JID.userServer) }

/// One event as a subscriber received it.
struct ReceivedEvent: Sendable {
    let routingKey: String
    let properties: AMQPProperties
    let body: Data
    let document: JSONValue

    var id: String { document["id"]?.stringValue ?? "" }
    /// `message.received`, `connection.state`… (from the CloudEvents type).
    var eventType: String {
        let t = document["type"]?.stringValue ?? ""
        return String(t.dropFirst("wabridge.".count).dropLast(".v1".count))
    }
    var data: JSONValue { document["data"] ?? .null }
}

/// Every delivery of a test queue, acknowledged and kept in arrival order.
actor EventInbox {
    private(set) var events: [ReceivedEvent] = []
    func add(_ e: ReceivedEvent) { events.append(e) }
    func of(_ type: String) -> [ReceivedEvent] { events.filter { $0.eventType == type } }
    func count(_ type: String) -> Int { events.filter { $0.eventType == type }.count }
}

/// A simulator, a data folder, a private topology prefix on the test broker, a
/// durable queue bound to `<device>.#` for each device the test names, and a consumer filling an inbox.
final class EventRig: Sendable {
    let h: DeviceHarness
    let topology: BridgeTopology
    let queue: String
    let inbox: EventInbox
    let admin: AMQPConnection
    let consumerTask: Task<Void, Never>

    private init(h: DeviceHarness, topology: BridgeTopology, queue: String, admin: AMQPConnection,
                 consumerTask: Task<Void, Never>, inbox: EventInbox) {
        self.h = h
        self.topology = topology
        self.queue = queue
        self.admin = admin
        self.consumerTask = consumerTask
        self.inbox = inbox
    }

    static func start(devices: [String], _ simTweak: (inout WASim.Configuration) -> Void = { _ in }) async throws -> EventRig {
        let h = try await DeviceHarness.start(simTweak)
        let prefix = "evt\(UUID().uuidString.prefix(8).lowercased())"
        let topology = BridgeTopology(prefix: prefix)
        let admin = try await AMQPConnection.connect(try TestBroker.configuration("events-test-consumer"))
        try await topology.declare(on: admin)
        let queue = "\(prefix).subscriber"
        try await admin.declareQueue(AMQPQueueDeclaration(name: queue, durable: true))
        for d in devices {
            try await admin.bind(AMQPBinding(queue: queue, exchange: topology.eventsExchange, routingKey: "\(d).#"))
        }
        let consumer = try await admin.consume(queue: queue, prefetch: 200)
        let inbox = EventInbox()
        let task = Task {
            do {
                for try await d in consumer {
                    try? d.ack()
                    let body = Data(d.body)
                    await inbox.add(ReceivedEvent(routingKey: d.routingKey, properties: d.properties, body: body,
                                                  document: JSONValue.parse(body) ?? .null))
                }
            } catch {}
        }
        return EventRig(h: h, topology: topology, queue: queue, admin: admin, consumerTask: task, inbox: inbox)
    }

    /// A manager on the rig's folder (not started publishing: see `publish`).
    func manager(recorder: (any EventRecording)? = nil, history: HistorySettings = HistorySettings(),
                 _ tweak: (inout WAClientConfiguration) -> Void = { _ in }) async throws -> DeviceManager {
        var client = WAClientConfiguration.local(endpoint: await h.sim.endpoint, noiseRoot: h.sim.rootPublicKey)
        client.keepalive = KeepalivePolicy(minInterval: .seconds(5), maxInterval: .seconds(5), timeout: .seconds(5))
        tweak(&client)
        let m = DeviceManager(store: try h.store(), configuration: .init(client: client, reconnectSpread: .milliseconds(100),
                                                                          qrTimeout: .seconds(10), history: history),
                              recorder: recorder)
        try await m.start()
        return m
    }

    /// Runs an `EventPublisher` on the manager's outbox recorder until the task is cancelled.
    func publish(_ recorder: OutboxRecorder) async throws -> (Task<Void, Never>, AMQPConnection) {
        let conn = try await AMQPConnection.connect(try TestBroker.configuration("events-test-publisher"))
        let publisher = EventPublisher(recorder: recorder, topology: topology, connection: { conn })
        return (Task { await publisher.drainForever() }, conn)
    }

    /// Creates `device`, links it by QR to the simulated phone `phone`, waits until it can receive.
    /// `settings`: a settings patch applied between creating the slot and linking.
    func link(_ m: DeviceManager, device: String, phone: String, settings: String? = nil) async throws -> JID {
        _ = try await m.create(id: device)
        if let settings { _ = try await m.updateSettings(device, patch: Data(settings.utf8)) }
        await h.sim.createPhone(number: phone)
        let qr = try await within(15) { try await m.startQRLogin(device) }
        let sim = h.sim
        let jid = try await within(15) { try await sim.scanQR(phone: phone, qr: qr.text) }
        try await m.waitForState(device, .connected, timeout: .seconds(15))
        try await waitUntil(15, "prekeys uploaded") { await sim.uploadedPreKeyCount(jid) == 812 }
        return jid
    }

    func shutdown() async {
        consumerTask.cancel()
        _ = try? await admin.deleteQueue(queue)
        for ex in [topology.eventsExchange, topology.commandsExchange, topology.deadExchange] { try? await admin.deleteExchange(ex) }
        _ = try? await admin.deleteQueue(topology.deadQueue)
        await admin.close()
        await h.shutdown()
    }
}

/// Validates events with the reference validator (python jsonschema 4.26, draft
/// 2020-12, formats checked): each document against `schemas/events/cloudevent.json`,
/// its `data` against `schemas/events/<type>.json`. Returns the problems.
func schemaProblems(_ events: [ReceivedEvent]) throws -> [String] {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let python = root.appendingPathComponent(".venv-peers/jsonschema/bin/python").path
    let script = """
        import json, sys
        from jsonschema import Draft202012Validator, FormatChecker
        root = sys.argv[1]
        def load(name):
            with open(f"{root}/schemas/events/{name}.json") as f:
                return Draft202012Validator(json.load(f), format_checker=FormatChecker())
        envelope = load("cloudevent")
        cache = {}
        bad = 0
        for line in sys.stdin:
            doc = json.loads(line)
            for e in envelope.iter_errors(doc):
                bad += 1; print("envelope", doc.get("type"), e.json_path, e.message)
            t = doc.get("type", "")[len("wabridge."):-len(".v1")]
            if t not in cache: cache[t] = load(t)
            for e in cache[t].iter_errors(doc.get("data")):
                bad += 1; print(t, e.json_path, e.message)
        print("checked", bad)
        """
    let p = Process()
    p.executableURL = URL(fileURLWithPath: python)
    p.arguments = ["-c", script, root.path]
    let input = Pipe(), output = Pipe()
    p.standardInput = input
    p.standardOutput = output
    try p.run()
    var lines = Data()
    for e in events { lines += e.body + Data("\n".utf8) }
    input.fileHandleForWriting.write(lines)
    try input.fileHandleForWriting.close()
    let out = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    let all = out.split(separator: "\n").map(String.init)
    guard p.terminationStatus == 0, all.last?.hasPrefix("checked") == true else {
        return ["validator failed (exit \(p.terminationStatus)): \(out)"]
    }
    return all.dropLast()
}

/// A recorder that refuses `message.received` while `failing` (a full disk, say), and counts tries.
final class FlakyRecorder: EventRecording {
    let inner: OutboxRecorder
    private let state = Mutex<(failing: Bool, attempts: Int)>((true, 0))

    init(_ inner: OutboxRecorder) { self.inner = inner }

    var attempts: Int { state.withLock { $0.attempts } }
    func setFailing(_ f: Bool) { state.withLock { $0.failing = f } }

    func record(_ event: CloudEvent) async throws {
        if event.type == .messageReceived {
            let fail = state.withLock { s -> Bool in
                s.attempts += 1
                return s.failing
            }
            if fail { throw StoreError(.io, "outbox disk full (test)") }
        }
        try await inner.record(event)
    }
}
