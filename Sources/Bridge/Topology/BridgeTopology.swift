import AMQP

/// The broker objects every worker relies on, named from the configured
/// prefix (contract, "AMQP topology"): `<p>.commands` (direct, routing key =
/// device ID), `<p>.events` (topic, `<deviceId>.<event type>`), and
/// `<p>.dead` with its durable queue, where refused commands are kept.
/// Per-device command queues are declared by the device manager.
public struct BridgeTopology: Sendable, Equatable {
    public let prefix: String

    public init(prefix: String) { self.prefix = prefix }

    public var commandsExchange: String { "\(prefix).commands" }
    public var eventsExchange: String { "\(prefix).events" }
    public var deadExchange: String { "\(prefix).dead" }
    public var deadQueue: String { "\(prefix).dead" }

    public func commandQueue(deviceID: String) -> String { "\(prefix).device.\(deviceID).commands" }

    /// Declares the shared exchanges and the dead-letter queue. Idempotent;
    /// a mismatch with what an operator declared by hand surfaces as
    /// `amqp.precondition_failed`.
    public func declare(on connection: AMQPConnection) async throws(AMQPError) {
        try await connection.declareExchange(AMQPExchangeDeclaration(name: commandsExchange, type: .direct))
        try await connection.declareExchange(AMQPExchangeDeclaration(name: eventsExchange, type: .topic))
        try await connection.declareExchange(AMQPExchangeDeclaration(name: deadExchange, type: .fanout))
        try await connection.declareQueue(AMQPQueueDeclaration(name: deadQueue, durable: true))
        try await connection.bind(AMQPBinding(queue: deadQueue, exchange: deadExchange, routingKey: ""))
    }
}
