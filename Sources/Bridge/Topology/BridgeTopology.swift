import AMQP

/// The broker objects every worker relies on, named from the configured
/// prefix (contract, "AMQP topology"; docs/amqp.md): `<p>.commands` (direct,
/// routing key = device ID, alternate exchange `<p>.commands.unrouted`),
/// `<p>.commands.unrouted` (fanout + durable queue: `default` and unknown
/// routing keys), `<p>.events` (topic, `<deviceId>.<event type>`), and
/// `<p>.dead` with its durable queue, where refused commands are kept.
/// Per-device command queues are declared by the command service
/// (`declareDeviceQueue`) for every device at start and when one is created.
public struct BridgeTopology: Sendable, Equatable {
    public let prefix: String

    public init(prefix: String) { self.prefix = prefix }

    public var commandsExchange: String { "\(prefix).commands" }
    public var eventsExchange: String { "\(prefix).events" }
    public var deadExchange: String { "\(prefix).dead" }
    public var deadQueue: String { "\(prefix).dead" }
    public var unroutedExchange: String { "\(prefix).commands.unrouted" }
    public var unroutedQueue: String { "\(prefix).commands.unrouted" }

    public func commandQueue(deviceID: String) -> String { "\(prefix).device.\(deviceID).commands" }

    /// Declares the shared exchanges and the dead-letter queue. Idempotent;
    /// a mismatch with what an operator declared by hand surfaces as
    /// `amqp.precondition_failed`.
    public func declare(on connection: AMQPConnection) async throws(AMQPError) {
        // The alternate exchange first: commands no device queue takes land there, not nowhere.
        // (A `<p>.commands` declared earlier without it must be deleted once: the broker refuses
        // to change an exchange's arguments, `amqp.precondition_failed`.)
        try await connection.declareExchange(AMQPExchangeDeclaration(name: unroutedExchange, type: .fanout))
        // One active consumer across workers, so `default` commands are forwarded in order.
        try await connection.declareQueue(AMQPQueueDeclaration(
            name: unroutedQueue, durable: true, arguments: ["x-single-active-consumer": .bool(true)]))
        try await connection.bind(AMQPBinding(queue: unroutedQueue, exchange: unroutedExchange, routingKey: ""))
        try await connection.declareExchange(AMQPExchangeDeclaration(
            name: commandsExchange, type: .direct, arguments: ["alternate-exchange": .string(unroutedExchange)]))
        try await connection.declareExchange(AMQPExchangeDeclaration(name: eventsExchange, type: .topic))
        try await connection.declareExchange(AMQPExchangeDeclaration(name: deadExchange, type: .fanout))
        try await connection.declareQueue(AMQPQueueDeclaration(name: deadQueue, durable: true))
        try await connection.bind(AMQPBinding(queue: deadQueue, exchange: deadExchange, routingKey: ""))
    }

    /// The arguments of a device's command queue: refused-by-the-broker messages
    /// go to `<p>.dead`; a single active consumer, so several workers never
    /// work one device's commands at once (the others stand by).
    public var deviceQueueArguments: AMQPTable {
        ["x-dead-letter-exchange": .string(deadExchange), "x-single-active-consumer": .bool(true)]
    }

    /// Declares a device's durable command queue and binds it to `<p>.commands`
    /// with the device ID. Idempotent.
    public func declareDeviceQueue(deviceID: String, on connection: AMQPConnection) async throws(AMQPError) {
        let queue = commandQueue(deviceID: deviceID)
        try await connection.declareQueue(AMQPQueueDeclaration(name: queue, durable: true, arguments: deviceQueueArguments))
        try await connection.bind(AMQPBinding(queue: queue, exchange: commandsExchange, routingKey: deviceID))
    }

    /// Deletes a device's command queue (and with it its binding and waiting commands).
    public func deleteDeviceQueue(deviceID: String, on connection: AMQPConnection) async throws(AMQPError) {
        try await connection.deleteQueue(commandQueue(deviceID: deviceID))
    }
}
