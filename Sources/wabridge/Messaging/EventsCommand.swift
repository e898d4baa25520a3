import AMQP
import ArgumentParser
import Bridge
import Foundation

/// `wabridge events`: a subscriber like any backend's (docs/amqp.md,
/// Events): an exclusive auto-delete queue bound to `<prefix>.events`,
/// printing each CloudEvent as one JSON line until interrupted.
struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "Print the bridge's CloudEvents as JSON lines as they arrive (Ctrl-C stops, exit 0).",
        discussion: """
            Binding: --device X → `X.#`; --type T → `*.T`; both → `X.T`; neither → `#`. \
            Exit status: 0 stopped by SIGINT/SIGTERM or --count; 4 broker unreachable or lost.
            """
    )

    @Option(name: .long, help: "Only this device's events.")
    var device: String?
    @Option(name: .long, help: "Only this event type (message.received, connection.state, …).")
    var type: String?
    @Option(name: .long, help: "Stop after this many events.")
    var count: Int?
    @OptionGroup var broker: BrokerOptions

    func validate() throws {
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
        for (name, value) in [("--device", device), ("--type", type)] {
            if let value, value.isEmpty || value.contains("*") || value.contains("#") {
                throw ValidationError("\(name) must be a plain name, without * or #")
            }
        }
    }

    /// The topic binding for the filters given. A full CloudEvents type
    /// (`wabridge.message.received.v1`) is taken as its short form.
    static func bindingKey(device: String?, type: String?) -> String {
        var type = type
        if let t = type, t.hasPrefix("wabridge."), t.hasSuffix(".v1") {
            type = String(t.dropFirst("wabridge.".count).dropLast(".v1".count))
        }
        return switch (device, type) {
        case let (d?, t?): "\(d).\(t)"
        case let (d?, nil): "\(d).#"
        case let (nil, t?): "*.\(t)"
        case (nil, nil): "#"
        }
    }

    func run() async throws {
        CLI.bootstrapLogging()
        try await CLI.run {
            let (connection, topology) = try await broker.connect(connectionName: "wabridge-events")
            let key = Self.bindingKey(device: device, type: type)
            let queue = "\(topology.prefix).cli.events.\(UUID().uuidString.lowercased())"
            let consumer: AMQPConsumer
            do throws(AMQPError) {
                try await connection.declareExchange(
                    AMQPExchangeDeclaration(name: topology.eventsExchange, type: .topic), passive: true)
                try await connection.declareQueue(
                    AMQPQueueDeclaration(name: queue, durable: false, exclusive: true, autoDelete: true))
                try await connection.bind(AMQPBinding(queue: queue, exchange: topology.eventsExchange, routingKey: key))
                consumer = try await connection.consume(queue: queue, prefetch: 64, exclusive: true)
            } catch {
                await connection.close()
                throw CLIError(error, "subscribing to \(topology.eventsExchange) (is a worker with prefix \(topology.prefix) running?)")
            }
            // Scripts (and the tests) wait for this line before expecting events.
            CLI.printError("wabridge events: listening on \(topology.eventsExchange) with binding \(key)")

            let limit = count
            let printer = Task { () throws -> Void in
                var seen = 0
                for try await delivery in consumer {
                    CLI.printLine(Self.oneLine(delivery.body))
                    try? delivery.ack()
                    seen += 1
                    if let limit, seen >= limit { return }
                }
            }
            // SIGINT/SIGTERM end the loop; the default action (death by signal) is replaced
            // so the consumer is cancelled and the connection closed, and the exit is 0.
            let signals = [SIGINT, SIGTERM].map { number in
                signal(number, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
                source.setEventHandler { printer.cancel() }
                source.resume()
                return source
            }
            defer { signals.forEach { $0.cancel() } }
            let outcome = await printer.result
            try? await consumer.cancel()
            await connection.close()
            if case .failure(let error) = outcome {
                let e = error as? AMQPError
                throw CLIError(e?.code.rawValue ?? "amqp.consumer_cancelled", "\(e?.message ?? "\(error)")", exit: .unreachable)
            }
        }
    }

    /// The event body as one line: compact JSON as published is passed on
    /// as is; a body with line breaks is re-serialised; a non-JSON body is
    /// wrapped so every line stays JSON.
    static func oneLine(_ body: [UInt8]) -> String {
        let text = String(decoding: body, as: UTF8.self)
        if !text.contains("\n") && !text.contains("\r"),
           (try? JSONSerialization.jsonObject(with: Data(body))) != nil {
            return text
        }
        if let object = try? JSONSerialization.jsonObject(with: Data(body)),
           let data = try? JSONSerialization.data(withJSONObject: object, options: [.withoutEscapingSlashes]) {
            return String(decoding: data, as: UTF8.self)
        }
        let wrapped = ["non_json_body_base64": Data(body).base64EncodedString()]
        return String(decoding: (try? JSONSerialization.data(withJSONObject: wrapped)) ?? Data(), as: UTF8.self)
    }
}
