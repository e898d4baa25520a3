import AMQP
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import WABinary
import WASim
import WATestSupport
import XCTest

/// One end-to-end world: the test broker, an in-process `WASim`, and the real
/// `wabridge serve` as a separate process pointed at both, with its own topology
/// prefix and data folder. Tests drive it the way users do: AMQP commands in,
/// CloudEvents out, admin HTTP for linking.
final class E2EWorld: @unchecked Sendable {
    // @unchecked: one test drives a world from its own task; the worker handle is
    // replaced only between steps (restart after a crash).
    let sim: WASim
    let prefix: String
    let dataDir: String
    let adminPort: Int
    let token = "e2e-token"
    let amqp: AMQPConnection
    let brokerURL: String
    private(set) var worker: WorkerProcess
    private var workerEnvironment: [String: String]
    private var queues: [String] = []

    static func brokerURL() throws -> String {
        guard let v = ProcessInfo.processInfo.environment["WABRIDGE_TEST_AMQP_URL"] else {
            throw WorkerProcess.Failure(description: "WABRIDGE_TEST_AMQP_URL unset: run scripts/test.sh")
        }
        return v
    }

    /// Starts the simulator and the worker; `settings` adds or overrides `WABRIDGE_*` settings.
    init(settings: [String: String] = [:]) async throws {
        sim = try WASim()
        try await sim.start()
        prefix = "e2e\(UUID().uuidString.prefix(8).lowercased())"
        dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("wabridge-e2e-\(UUID().uuidString)").path
        adminPort = try WorkerProcess.freeLoopbackPort()
        brokerURL = try Self.brokerURL()
        let root = sim.rootPublicKey.rawRepresentation.map { String(format: "%02x", $0) }.joined()
        var env = [
            "WABRIDGE_AMQP_URL": brokerURL,
            "WABRIDGE_TOPOLOGY_PREFIX": prefix,
            "WABRIDGE_DATA_DIR": dataDir,
            "WABRIDGE_WA_URL": await sim.endpoint.absoluteString,
            "WABRIDGE_WA_ROOT_KEY": root,
            "WABRIDGE_ADMIN_PORT": String(adminPort),
            "WABRIDGE_ADMIN_TOKEN": token,
            "WABRIDGE_RECONNECT_SPREAD": "0",
            "WABRIDGE_LOG_LEVEL": "info",
        ]
        env.merge(settings) { $1 }
        workerEnvironment = env
        worker = try WorkerProcess(environment: env)
        amqp = try await AMQPConnection.connect(try AMQPConfiguration(url: brokerURL, connectionName: "e2e-test"))
        try await waitReady()
    }

    var commandsExchange: String { "\(prefix).commands" }
    var eventsExchange: String { "\(prefix).events" }
    var deadQueue: String { "\(prefix).dead" }

    // MARK: Worker process

    /// `kill -9` of the worker, then a new one on the same data folder.
    func crashAndRestart() async throws {
        worker.crash()
        worker = try WorkerProcess(environment: workerEnvironment)
        try await waitReady()
    }

    func waitReady() async throws { try await waitReady(worker, port: adminPort) }

    func waitReady(_ worker: WorkerProcess, port: Int) async throws {
        for _ in 0..<300 {
            if let (status, _) = try? await http("GET", "/readyz", auth: false, port: port), status == 200 { return }
            if !worker.isRunning { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw WorkerProcess.Failure(description: "worker never became ready (running: \(worker.isRunning)); output:\n\(worker.output.value.suffix(4000))")
    }

    /// Another `wabridge serve` on the same data folder, topology and simulator (workers sharing
    /// one store), with its own admin port and `WABRIDGE_WORKER_ID`; stopped by the caller.
    func startWorker(id: String) async throws -> (worker: WorkerProcess, port: Int) {
        let port = try WorkerProcess.freeLoopbackPort()
        var env = workerEnvironment
        env["WABRIDGE_ADMIN_PORT"] = String(port)
        env["WABRIDGE_WORKER_ID"] = id
        let w = try WorkerProcess(environment: env)
        try await waitReady(w, port: port)
        return (w, port)
    }

    /// Every device as the admin HTTP lists it (id, state, worker…).
    func deviceList(port: Int? = nil) async throws -> [[String: Any]] {
        var r = URLRequest(url: URL(string: "http://127.0.0.1:\(port ?? adminPort)/devices")!)
        r.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        let (data, _) = try await URLSession.shared.data(for: r)
        let any = try JSONSerialization.jsonObject(with: data)
        return (any as? [[String: Any]]) ?? ((any as? [String: Any])?["devices"] as? [[String: Any]]) ?? []
    }

    /// Stops everything this world started and deletes its broker objects and data.
    func tearDown() async {
        worker.stop()
        for q in queues { _ = try? await amqp.deleteQueue(q) }
        if let devices = try? await listDevices() {
            for d in devices { _ = try? await amqp.deleteQueue("\(prefix).device.\(d).commands") }
        }
        for q in [deadQueue, "\(prefix).commands.unrouted"] { _ = try? await amqp.deleteQueue(q) }
        for x in ["commands", "commands.unrouted", "events", "dead"] { try? await amqp.deleteExchange("\(prefix).\(x)") }
        await amqp.close()
        await sim.shutdown()
        try? FileManager.default.removeItem(atPath: dataDir)
    }

    // MARK: Admin HTTP

    func http(_ method: String, _ path: String, body: [String: Any]? = nil, auth: Bool = true,
              port: Int? = nil) async throws -> (Int, [String: Any]) {
        var r = URLRequest(url: URL(string: "http://127.0.0.1:\(port ?? adminPort)\(path)")!)
        r.httpMethod = method
        r.timeoutInterval = 30
        if auth { r.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        if let body {
            r.httpBody = try JSONSerialization.data(withJSONObject: body)
            r.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let (data, response) = try await URLSession.shared.data(for: r)
        let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, object)
    }

    func listDevices() async throws -> [String] {
        var r = URLRequest(url: URL(string: "http://127.0.0.1:\(adminPort)/devices")!)
        r.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        let (data, _) = try await URLSession.shared.data(for: r)
        let any = try JSONSerialization.jsonObject(with: data)
        let list = (any as? [[String: Any]]) ?? ((any as? [String: Any])?["devices"] as? [[String: Any]]) ?? []
        return list.compactMap { $0["id"] as? String }
    }

    func deviceState(_ id: String) async throws -> String? {
        try await http("GET", "/devices/\(id)").1["state"] as? String
    }

    func waitState(_ id: String, _ state: String, timeout: TimeInterval = 30) async throws {
        let end = Date().addingTimeInterval(timeout)
        var last: String?
        while Date() < end {
            last = try? await deviceState(id)
            if last == state { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw WorkerProcess.Failure(description: "device \(id) never reached \(state) (is \(last ?? "?"))")
    }

    func createDevice(_ id: String, port: Int? = nil) async throws {
        let (status, body) = try await http("POST", "/devices", body: ["id": id], port: port)
        guard status == 201 else { throw WorkerProcess.Failure(description: "create \(id): \(status) \(body)") }
    }

    /// Creates device `id`, links it by QR to a new simulated phone `phone`, waits for `connected`.
    @discardableResult
    func linkDevice(_ id: String, phone: String, port: Int? = nil) async throws -> JID {
        try await createDevice(id, port: port)
        let (status, qr) = try await http("POST", "/devices/\(id)/login/qr", port: port)
        guard status == 200, let text = qr["qr"] as? String else {
            throw WorkerProcess.Failure(description: "QR login of \(id): \(status) \(qr)")
        }
        await sim.createPhone(number: phone)
        let jid = try await sim.scanQR(phone: phone, qr: text)
        try await waitState(id, "connected")
        return jid
    }

    // MARK: AMQP

    /// A durable queue of the test's own (survives a broker restart), deleted at tear-down.
    func declareQueue(bindingEventsWith keys: [String] = []) async throws -> String {
        let name = "\(prefix).test.\(UUID().uuidString.prefix(8).lowercased())"
        _ = try await amqp.declareQueue(AMQPQueueDeclaration(name: name, durable: true))
        for key in keys { try await amqp.bind(AMQPBinding(queue: name, exchange: eventsExchange, routingKey: key)) }
        queues.append(name)
        return name
    }

    /// Publishes a command (with confirm). `body` is sent as given.
    func publishCommand(
        _ body: [UInt8], to routingKey: String, messageID: String? = nil, replyTo: String? = nil,
        correlationID: String? = nil, contentType: String? = "application/json"
    ) async throws {
        try await amqp.publish(AMQPOutgoingMessage(
            exchange: commandsExchange, routingKey: routingKey, body: body,
            properties: AMQPProperties(
                contentType: contentType, deliveryMode: .persistent, correlationID: correlationID,
                replyTo: replyTo, messageID: messageID)))
    }

    func publishCommand(_ json: [String: Any], to routingKey: String, replyTo: String? = nil, correlationID: String? = nil) async throws {
        try await publishCommand(Array(try JSONSerialization.data(withJSONObject: json)), to: routingKey,
                                 replyTo: replyTo, correlationID: correlationID)
    }

    /// Starts collecting everything that arrives on `queue` (acked on receipt).
    func collect(_ queue: String) async throws -> Collector {
        let consumer = try await amqp.consume(queue: queue, prefetch: 200)
        let collector = Collector(queue: queue)
        collector.task = Task {
            do {
                for try await d in consumer {
                    await collector.add(d)
                    try? d.ack()
                }
            } catch {}
        }
        return collector
    }
}

/// Messages received on one queue, in arrival order.
actor Collector {
    struct Message: @unchecked Sendable {
        // @unchecked: `json` is a parsed JSON tree (Foundation types), never mutated.
        let body: [UInt8]
        let properties: AMQPProperties
        let routingKey: String
        let json: [String: Any]?
    }

    nonisolated let queue: String
    nonisolated(unsafe) var task: Task<Void, Never>?
    private(set) var messages: [Message] = []

    init(queue: String) { self.queue = queue }

    func add(_ d: AMQPDelivery) {
        let json = (try? JSONSerialization.jsonObject(with: Data(d.body))) as? [String: Any]
        messages.append(Message(body: d.body, properties: d.properties, routingKey: d.routingKey, json: json))
    }

    /// Waits until `predicate` holds over the messages so far; returns them.
    func wait(timeout: TimeInterval = 30, _ what: String, until predicate: @Sendable ([Message]) -> Bool) async throws -> [Message] {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            if predicate(messages) { return messages }
            try await Task.sleep(for: .milliseconds(50))
        }
        if predicate(messages) { return messages }
        throw WorkerProcess.Failure(description: "timed out waiting for \(what); have \(messages.count): \(messages.suffix(5).map { String(decoding: $0.body, as: UTF8.self) })")
    }

    func stop() { task?.cancel() }
}

extension Collector.Message {
    var eventType: String? { json?["type"] as? String }
    var data: [String: Any] { json?["data"] as? [String: Any] ?? [:] }
    var header: [String: String] {
        var out: [String: String] = [:]
        for (k, v) in properties.headers ?? [:] {
            if case .string(let s) = v { out[k] = s } else { out[k] = "\(v)" }
        }
        return out
    }
}
