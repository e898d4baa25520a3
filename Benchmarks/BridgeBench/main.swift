import AMQP
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import WABinary
import WASim
import WATestSupport

// The bridge end to end, as a report (not a timed test): one `wabridge serve`
// process (release build), the broker, and an in-process simulator.
//   outbound: N `send.text` commands published with pipelined confirms; each
//             result on `reply_to` marks its server ack; throughput and p50/p99
//             latency from publish to result.
//   inbound:  a simulated phone sends N texts; time until N `message.received`
//             events (confirmed by the broker before the worker drops them from
//             its outbox) have been consumed.
//   baseline: `amqp-bench-c` moving N messages through the same broker (publish
//             with confirms, then consume), in the same run.
// CPU seconds of each process per phase say where the time goes.
//
// usage: bridge-bench AMQP_URL [COUNT] [ROUNDS] [DEVICES]
// DEVICES (default 1) linked devices share the work round-robin: one device's
// commands are handled in order, one at a time; devices run in parallel.

let args = CommandLine.arguments
guard args.count >= 2 else {
    FileHandle.standardError.write(Data("usage: bridge-bench AMQP_URL [COUNT] [ROUNDS]\n".utf8))
    exit(2)
}
let brokerURL = args[1]
let count = args.count > 2 ? Int(args[2]) ?? 2000 : 2000
let dump = ProcessInfo.processInfo.environment["BENCH_DUMP"] != nil
let rounds = args.count > 3 ? Int(args[3]) ?? 1 : 1
let deviceCount = max(1, args.count > 4 ? Int(args[4]) ?? 1 : 1)
let deviceIDs = (1...deviceCount).map { deviceCount == 1 ? "bench" : "bench\($0)" }
let binDir = URL(fileURLWithPath: args[0]).deletingLastPathComponent()

struct BenchError: Error, CustomStringConvertible { let description: String }

func cpuSeconds(_ pid: Int32) -> Double { ProcessStats.cpuSeconds(pid) }

func brokerPID() -> Int32? {
    guard let path = ProcessInfo.processInfo.environment["WABRIDGE_TEST_BROKER_PID_FILE"],
          let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
    return Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
}

struct CPU {
    var worker: Double, bench: Double, broker: Double
    static func now(worker: Int32) -> CPU {
        CPU(worker: cpuSeconds(worker), bench: cpuSeconds(getpid()), broker: brokerPID().map(cpuSeconds) ?? 0)
    }
    static func - (a: CPU, b: CPU) -> CPU { CPU(worker: a.worker - b.worker, bench: a.bench - b.bench, broker: a.broker - b.broker) }
    var text: String { String(format: "worker %.1f s, simulator+bench %.1f s, broker %.1f s", worker, bench, broker) }
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    return sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * p + 0.5))]
}

func http(_ port: Int, _ token: String, _ method: String, _ path: String, body: [String: Any]? = nil) async throws -> (Int, [String: Any]) {
    var r = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
    r.httpMethod = method
    r.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
    if let body { r.httpBody = try JSONSerialization.data(withJSONObject: body) }
    let (data, response) = try await URLSession.shared.data(for: r)
    return ((response as? HTTPURLResponse)?.statusCode ?? 0, (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:])
}

/// The C baseline: N messages of `size` bytes through the same broker; seconds for publish + consume.
func baseline(size: Int) throws -> Double {
    guard let url = URL(string: brokerURL), let port = url.port else { throw BenchError(description: "bad broker URL") }
    let p = Process()
    p.executableURL = binDir.appendingPathComponent("amqp-bench-c")
    let queue = "bridge-bench-baseline-\(UUID().uuidString.prefix(6))"
    p.arguments = ["127.0.0.1", String(port), queue, String(size), String(count), "1000", "500"]
    let out = Pipe()
    p.standardOutput = out
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw BenchError(description: "amqp-bench-c failed; build it: swift build -c release --product amqp-bench-c") }
    var seconds = 0.0
    for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
        let f = line.split(separator: " ")
        if f.count == 5, f[0] == "c", let s = Double(f[4]) { seconds += s }
    }
    return seconds
}

func run() async throws {
    // The simulator keeps at most `maxOutbox` unacked stanzas per device and drops the
    // oldest beyond it; a burst of COUNT messages plus their receipts must fit.
    var simConfiguration = WASim.Configuration()
    simConfiguration.limits.maxOutbox = max(simConfiguration.limits.maxOutbox, 4 * count + 1_000)
    let sim = try WASim(configuration: simConfiguration)
    try await sim.start()
    let adminPort = try WorkerProcess.freeLoopbackPort()
    let token = "bench"
    let prefix = "bench\(UUID().uuidString.prefix(6).lowercased())"
    let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("wabridge-bench-\(UUID().uuidString)").path
    let root = sim.rootPublicKey.rawRepresentation.map { String(format: "%02x", $0) }.joined()
    let worker = try WorkerProcess(binary: binDir.appendingPathComponent("wabridge"), environment: [
        "WABRIDGE_AMQP_URL": brokerURL, "WABRIDGE_TOPOLOGY_PREFIX": prefix, "WABRIDGE_DATA_DIR": dataDir,
        "WABRIDGE_WA_URL": await sim.endpoint.absoluteString, "WABRIDGE_WA_ROOT_KEY": root,
        "WABRIDGE_ADMIN_PORT": String(adminPort), "WABRIDGE_ADMIN_TOKEN": token, "WABRIDGE_RECONNECT_SPREAD": "0",
        "WABRIDGE_LOG_LEVEL": dump ? "info" : "warning", "WABRIDGE_SEND_RATE": "1000", "WABRIDGE_SEND_BURST": "10000",
    ])
    defer {
        worker.stop()
        // BENCH_DUMP=1: the worker logs at info and its last lines are printed (to see reconnects and such).
        if dump { print(worker.output.value.suffix(6000)) }
        try? FileManager.default.removeItem(atPath: dataDir)
    }
    var ready = false
    for _ in 0..<300 where !ready {
        if let (s, _) = try? await http(adminPort, token, "GET", "/readyz"), s == 200 { ready = true; break }
        if !worker.isRunning { break }
        try await Task.sleep(for: .milliseconds(100))
    }
    guard ready else { throw BenchError(description: "the worker never became ready:\n\(worker.output.value.suffix(3000))") }
    var owns: [JID] = []
    for (i, device) in deviceIDs.enumerated() {
        _ = try await http(adminPort, token, "POST", "/devices", body: ["id": device])
        let (_, qr) = try await http(adminPort, token, "POST", "/devices/\(device)/login/qr")
        guard let qrText = qr["qr"] as? String else { throw BenchError(description: "no QR: \(qr)\n\(worker.output.value.suffix(2000))") }
        let phone = String(15559991000 + i)
        await sim.createPhone(number: phone)
        owns.append(try await sim.scanQR(phone: phone, qr: qrText))
        for _ in 0..<200 {
            if let (_, d) = try? await http(adminPort, token, "GET", "/devices/\(device)"), d["state"] as? String == "connected" { break }
            try await Task.sleep(for: .milliseconds(100))
        }
    }
    await sim.createPhone(number: "15559990002")

    let amqp = try await AMQPConnection.connect(try AMQPConfiguration(url: brokerURL, connectionName: "bridge-bench"))
    let results = "\(prefix).bench.results"
    let events = "\(prefix).bench.events"
    _ = try await amqp.declareQueue(AMQPQueueDeclaration(name: results, durable: false, autoDelete: false))
    _ = try await amqp.declareQueue(AMQPQueueDeclaration(name: events, durable: true))
    try await amqp.bind(AMQPBinding(queue: events, exchange: "\(prefix).events", routingKey: "*.message.received"))
    defer {
        Task {
            _ = try? await amqp.deleteQueue(results)
            _ = try? await amqp.deleteQueue(events)
        }
    }
    let clock = ContinuousClock()

    print("bridge-bench: \(count) messages per phase over \(deviceCount) device(s), \(rounds) round(s); load average before: \((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?")")
    for round in 1...rounds {
        // Outbound.
        let resultConsumer = try await amqp.consume(queue: results, prefetch: 1000)
        var sentAt = [ContinuousClock.Instant](repeating: clock.now, count: count)
        var batch: [AMQPOutgoingMessage] = []
        let tag = "r\(round)-\(UUID().uuidString.prefix(4))"
        for i in 0..<count {
            let body = try JSONSerialization.data(withJSONObject: ["id": "\(tag)-\(i)", "kind": "send.text", "to": "+15559990002", "text": "bench \(i)"])
            batch.append(AMQPOutgoingMessage(exchange: "\(prefix).commands", routingKey: deviceIDs[i % deviceCount], body: Array(body),
                properties: AMQPProperties(contentType: "application/json", deliveryMode: .persistent, correlationID: String(i), replyTo: results)))
        }
        let cpu0 = CPU.now(worker: worker.pid)
        let t0 = clock.now
        for start in stride(from: 0, to: count, by: 250) {
            let slice = Array(batch[start..<min(count, start + 250)])
            let now = clock.now
            for i in start..<min(count, start + 250) { sentAt[i] = now }
            let failed = await amqp.publish(contentsOf: slice).compactMap { $0 }
            if !failed.isEmpty { throw BenchError(description: "publish failed: \(failed[0])") }
        }
        var latencies: [Double] = []
        var failures = 0
        for try await d in resultConsumer {
            try? d.ack()
            if let i = Int(d.properties.correlationID ?? "") , i < count {
                latencies.append((clock.now - sentAt[i]).seconds)
            }
            if let o = (try? JSONSerialization.jsonObject(with: Data(d.body))) as? [String: Any], o["status"] as? String != "sent" { failures += 1 }
            if latencies.count >= count { break }
        }
        let outSeconds = (clock.now - t0).seconds
        let outCPU = CPU.now(worker: worker.pid) - cpu0
        try? await resultConsumer.cancel()
        latencies.sort()

        // Paced: commands at a steady 50/s, well under capacity: the latency a sender sees.
        let paced = min(500, count)
        let pacedConsumer = try await amqp.consume(queue: results, prefetch: 1000)
        let pacedStart = clock.now + .milliseconds(100)
        let pacedTag = "p\(round)-\(UUID().uuidString.prefix(4))"
        // Published from a task of its own while the results are read here, each at its
        // planned instant; latency is measured from that instant.
        let pacer = Task {
            for i in 0..<paced {
                try await clock.sleep(until: pacedStart + .milliseconds(20 * i))
                let body = try JSONSerialization.data(withJSONObject: ["id": "\(pacedTag)-\(i)", "kind": "send.text", "to": "+15559990002", "text": "paced \(i)"])
                try await amqp.publish(AMQPOutgoingMessage(exchange: "\(prefix).commands", routingKey: deviceIDs[i % deviceCount], body: Array(body),
                    properties: AMQPProperties(contentType: "application/json", deliveryMode: .persistent, correlationID: String(i), replyTo: results)))
            }
        }
        var pacedLatencies: [Double] = []
        for try await d in pacedConsumer {
            try? d.ack()
            if let i = Int(d.properties.correlationID ?? ""), i < paced {
                pacedLatencies.append((clock.now - (pacedStart + .milliseconds(20 * i))).seconds)
            }
            if pacedLatencies.count >= paced { break }
        }
        try await pacer.value
        try? await pacedConsumer.cancel()
        pacedLatencies.sort()

        // Inbound.
        let eventConsumer = try await amqp.consume(queue: events, prefetch: 1000)
        let cpu1 = CPU.now(worker: worker.pid)
        let t1 = clock.now
        let sender = Task {
            for i in 0..<count { _ = try await sim.sendText(from: "15559990002", to: owns[i % deviceCount].nonAD, text: "in \(i)") }
            return (clock.now - t1).seconds
        }
        var received = 0
        for try await d in eventConsumer {
            try? d.ack()
            received += 1
            if received >= count { break }
        }
        let inSeconds = (clock.now - t1).seconds
        let simSendSeconds = try await sender.value
        let inCPU = CPU.now(worker: worker.pid) - cpu1
        try? await eventConsumer.cancel()

        // Baselines: the same number of messages through the same broker with plain rabbitmq-c.
        let baseOut = try baseline(size: batch.first?.body.count ?? 100)
        let baseIn = try baseline(size: 700)
        let outRate = Double(count) / outSeconds, inRate = Double(count) / inSeconds
        let baseOutRate = Double(count) / baseOut, baseInRate = Double(count) / baseIn
        print(String(format: "round %d outbound: %.0f commands/s (%d failed), p50 %.1f ms, p99 %.1f ms; baseline %.0f msg/s; ratio %.2f",
                     round, outRate, failures, percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000, baseOutRate, outRate / baseOutRate))
        print("  CPU during outbound: \(outCPU.text) over \(String(format: "%.1f", outSeconds)) s")
        print(String(format: "round %d paced: %d commands at 50/s, publish to result p50 %.1f ms, p99 %.1f ms",
                     round, paced, percentile(pacedLatencies, 0.5) * 1000, percentile(pacedLatencies, 0.99) * 1000))
        print(String(format: "round %d inbound: %.0f messages/s to consumed events (the phone's sends took %.1f s); baseline %.0f msg/s; ratio %.2f",
                     round, inRate, simSendSeconds, baseInRate, inRate / baseInRate))
        print("  CPU during inbound: \(inCPU.text) over \(String(format: "%.1f", inSeconds)) s")
    }
    await amqp.close()
    await sim.shutdown()
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

do {
    try await run()
} catch {
    FileHandle.standardError.write(Data("bridge-bench failed: \(error)\n".utf8))
    exit(1)
}
