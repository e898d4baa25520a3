import AMQP
import Foundation

// Publish-with-confirms and consume throughput of the Swift AMQP layer,
// beside the plain rabbitmq-c baseline (amqp-bench-c) run on the same
// broker in the same process tree. Prints a Markdown report with ratios.
//
// usage: amqp-bench AMQP_URL [COUNT] [ROUNDS]
// (scripts/bench-amqp.sh starts the test broker and runs this.)

let args = CommandLine.arguments
guard args.count >= 2 else {
    FileHandle.standardError.write("usage: amqp-bench AMQP_URL [COUNT] [ROUNDS]\n".data(using: .utf8)!)
    exit(2)
}
let url = args[1]
let count = args.count > 2 ? Int(args[2]) ?? 20_000 : 20_000
let rounds = args.count > 3 ? Int(args[3]) ?? 3 : 3
let window = 1000
let prefetch: UInt16 = 500
let sizes = [200, 4096]

func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

/// Runs the C baseline once; returns (publish seconds, consume seconds).
func runC(size: Int, queue: String) throws -> (Double, Double) {
    let endpoint = try AMQPConfiguration.Endpoint(url: url)
    let exe = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("amqp-bench-c")
    let p = Process()
    p.executableURL = exe
    p.arguments = [endpoint.host, "\(endpoint.port)", queue, "\(size)", "\(count)", "\(window)", "\(prefetch)"]
    let out = Pipe()
    p.standardOutput = out
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw AMQPError(code: .library, message: "C baseline failed") }
    var pub = 0.0, con = 0.0
    for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
        let f = line.split(separator: " ")
        guard f.count == 5, let s = Double(f[4]) else { continue }
        if f[1] == "publish" { pub = s } else if f[1] == "consume" { con = s }
    }
    return (pub, con)
}

/// The same work through the Swift layer: publishes in batches from four
/// concurrent producers (≤ `window` unconfirmed), then consumes with acks.
func runSwift(size: Int, queue: String) async throws -> (Double, Double) {
    let conn = try await AMQPConnection.connect(try AMQPConfiguration(url: url, connectionName: "amqp-bench"))
    try await conn.declareQueue(AMQPQueueDeclaration(name: queue, durable: true))
    try await conn.purgeQueue(queue)
    let body = [UInt8](repeating: UInt8(ascii: "x"), count: size)
    let producers = 4
    let batch = window / producers
    let clock = ContinuousClock()
    let t0 = clock.now
    try await withThrowingTaskGroup(of: Void.self) { group in
        for p in 0..<producers {
            group.addTask {
                var i = p * batch
                while i < count {
                    let upper = min(count, i + batch)
                    let msgs = (i..<upper).map {
                        AMQPOutgoingMessage(exchange: "", routingKey: queue, body: body,
                                            properties: AMQPProperties(deliveryMode: .persistent, messageID: "\($0)"))
                    }
                    let errors = await conn.publish(contentsOf: msgs)
                    if let e = errors.compactMap({ $0 }).first { throw e }
                    i += producers * batch
                }
            }
        }
        try await group.waitForAll()
    }
    let pub = seconds(clock.now - t0)

    let t1 = clock.now
    let consumer = try await conn.consume(queue: queue, prefetch: prefetch)
    var received = 0
    for try await d in consumer {
        try d.ack()
        received += 1
        if received == count { break }
    }
    let con = seconds(clock.now - t1)
    try await consumer.cancel()
    await conn.close()
    return (pub, con)
}

print("# AMQP layer benchmark\n")
print("\(count) persistent messages per run, \(window) unconfirmed at most, prefetch \(prefetch), best of \(rounds) rounds.\n")
print("| size | phase | C rabbitmq-c msg/s | Swift AMQP msg/s | Swift / C |")
print("|---:|---|---:|---:|---:|")
for size in sizes {
    var best: [String: (c: Double, s: Double)] = ["publish": (.infinity, .infinity), "consume": (.infinity, .infinity)]
    for r in 0..<rounds {
        // Alternate who goes first so broker warm-up favours neither side.
        let q = "bench.amqp.\(size)"
        var c = (0.0, 0.0), s = (0.0, 0.0)
        if r % 2 == 0 {
            c = try runC(size: size, queue: q)
            s = try await runSwift(size: size, queue: q)
        } else {
            s = try await runSwift(size: size, queue: q)
            c = try runC(size: size, queue: q)
        }
        best["publish"] = (min(best["publish"]!.c, c.0), min(best["publish"]!.s, s.0))
        best["consume"] = (min(best["consume"]!.c, c.1), min(best["consume"]!.s, s.1))
    }
    for phase in ["publish", "consume"] {
        let b = best[phase]!
        let cr = Double(count) / b.c, sr = Double(count) / b.s
        print("| \(size) B | \(phase) | \(Int(cr)) | \(Int(sr)) | \(String(format: "%.0f %%", 100 * sr / cr)) |")
    }
}
