import AMQP
import ArgumentParser
import Bridge
import Foundation

/// `wabridge send`: one `send.text` command the way any backend would send it
/// (docs/amqp.md): published with a publisher confirm to `<prefix>.commands`,
/// routing key = device ID (or `default`), `reply_to` = an exclusive
/// auto-delete queue of its own; waits for the result and prints it.
struct SendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Send a text message through the bridge's AMQP command queue and wait for the result.",
        discussion: """
            Prints the result JSON on standard output. Exit status: 0 sent; 1 failed or rejected \
            (the error code is printed on standard error); 3 no result within --timeout; \
            4 broker unreachable.
            """
    )

    @Option(name: .long, help: "Device ID (routing key); omitted = `default`, served when exactly one device exists.")
    var device: String?
    @Option(name: .long, help: "Recipient: a JID or an international phone number (+15551234567).")
    var to: String
    @Option(name: .long, help: "The message text.")
    var text: String
    @Option(name: .long, help: "Command ID, the idempotency key (default: a fresh UUID).")
    var id: String?
    @Option(name: .customLong("reply-to"), help: "Quote this message ID.")
    var replyTo: String?
    @Option(name: .customLong("reply-to-sender"), help: "The quoted message's author (needed in groups).")
    var replyToSender: String?
    @Option(name: .long, help: "Seconds to wait for the result.")
    var timeout: Double = 30
    @OptionGroup var broker: BrokerOptions

    func validate() throws {
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
        if let id, id.isEmpty || id.count > 128 { throw ValidationError("--id must be 1–128 characters") }
        if replyToSender != nil && replyTo == nil { throw ValidationError("--reply-to-sender needs --reply-to") }
    }

    /// The command body (docs/amqp.md, `send.text`).
    struct Body: Encodable {
        struct Quote: Encodable { let id: String; let sender: String? }
        let id: String
        let kind = "send.text"
        let to: String
        let text: String
        let reply_to: Quote?
    }

    func run() async throws {
        CLI.bootstrapLogging()
        try await CLI.run {
            let commandID = id ?? UUID().uuidString.lowercased()
            let (connection, topology) = try await broker.connect(connectionName: "wabridge-send")
            let outcome: Result<[UInt8], any Error>
            do {
                outcome = .success(try await roundTrip(connection, topology, commandID: commandID))
            } catch {
                outcome = .failure(error)
            }
            await connection.close()
            let result = try outcome.get()
            CLI.printLine(String(decoding: result, as: UTF8.self))
            try Self.check(result, commandID: commandID)
        }
    }

    /// Publishes the command and waits for its result on a reply queue of our own.
    func roundTrip(_ connection: AMQPConnection, _ topology: BridgeTopology, commandID: String) async throws -> [UInt8] {
        do {
            try await connection.declareExchange(
                AMQPExchangeDeclaration(name: topology.commandsExchange, type: .direct), passive: true)
        } catch {
            throw CLIError(error, "exchange \(topology.commandsExchange) (is a worker with prefix \(topology.prefix) running?)")
        }

        // Consumed before the command goes out, so no result can be missed.
        let replyQueue = "\(topology.prefix).cli.reply.\(UUID().uuidString.lowercased())"
        let consumer: AMQPConsumer
        do {
            try await connection.declareQueue(
                AMQPQueueDeclaration(name: replyQueue, durable: false, exclusive: true, autoDelete: true))
            consumer = try await connection.consume(queue: replyQueue, prefetch: 16, exclusive: true)
        } catch {
            throw CLIError(error, "reply queue")
        }

        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        let body = Body(id: commandID, to: to, text: text,
                        reply_to: replyTo.map { Body.Quote(id: $0, sender: replyToSender) })
        let bytes = [UInt8]((try? encoder.encode(body)) ?? Data())
        let message = AMQPOutgoingMessage(
            exchange: topology.commandsExchange, routingKey: device ?? "default", body: bytes,
            properties: AMQPProperties(
                contentType: "application/json", deliveryMode: .persistent, correlationID: commandID,
                replyTo: replyQueue, messageID: commandID,
                timestamp: UInt64(Date().timeIntervalSince1970), appID: "wabridge-cli"))
        do {
            try await connection.publish(message)
        } catch {
            throw CLIError(error, "publish to \(topology.commandsExchange)")
        }
        let result = try await Self.awaitResult(on: consumer, correlationID: commandID, timeout: timeout)
        try? await consumer.cancel()
        return result
    }

    /// The first delivery carrying our correlation ID, or a timeout error.
    static func awaitResult(on consumer: AMQPConsumer, correlationID: String, timeout: Double) async throws -> [UInt8] {
        enum Outcome: Sendable { case result([UInt8]), ended, timedOut }
        let outcome = try await withThrowingTaskGroup(of: Outcome.self) { group in
            group.addTask {
                for try await delivery in consumer {
                    try? delivery.ack()
                    if delivery.properties.correlationID == correlationID { return .result(delivery.body) }
                }
                return .ended
            }
            group.addTask {
                try await Task.sleep(for: .milliseconds(Int(timeout * 1000)))
                return .timedOut
            }
            let first = try await group.next() ?? .ended
            group.cancelAll()
            return first
        }
        switch outcome {
        case .result(let body): return body
        case .timedOut:
            throw CLIError("TIMEOUT", "no result for command \(correlationID) within \(timeout) s (is the device's worker running?)",
                           exit: .timeout)
        case .ended:
            throw CLIError("amqp.consumer_cancelled", "the reply queue's consumer ended before a result arrived", exit: .unreachable)
        }
    }

    /// `sent` is success; anything else exits with the result's error code.
    static func check(_ result: [UInt8], commandID: String) throws(CLIError) {
        struct Result: Decodable {
            struct E: Decodable { let code: String; let message: String? }
            let status: String
            let error: E?
        }
        guard let r = try? JSONDecoder().decode(Result.self, from: Data(result)) else {
            throw CLIError("BAD_RESULT", "the result for \(commandID) is not the documented JSON")
        }
        guard r.status == "sent" else {
            throw CLIError(r.error?.code ?? r.status.uppercased(), "\(r.status): \(r.error?.message ?? "")")
        }
    }
}
