import AMQP

/// The broker objects every worker relies on, named from the configured
/// prefix (contract, "AMQP topology"; docs/amqp.md): `<p>.commands` (direct,
/// routing key = device ID, alternate exchange `<p>.commands.unrouted`),
/// `<p>.commands.unrouted` (fanout + durable queue: `default` and unknown
/// routing keys), `<p>.events` (topic, `<deviceId>.<event type>`), and
/// `<p>.dead` with its durable queue, where refused commands are kept.
/// Per-device command queues are declared by the command service
/// (`declareDeviceQueue`) for every device at start and when one is created.
/// The queues are classic, or quorum (`WABRIDGE_QUEUE_TYPE`, replicated on a
/// RabbitMQ cluster; docs/amqp.md, "RabbitMQ cluster").
public struct BridgeTopology: Sendable, Equatable {
    public enum QueueType: String, Sendable, Equatable, CaseIterable {
        case classic, quorum
    }

    public let prefix: String
    public let queueType: QueueType
    /// Quorum queues only: deliveries of one message before the broker
    /// dead-letters it to `<p>.dead` (so a message that keeps failing cannot
    /// circle forever).
    public let deliveryLimit: Int

    public init(prefix: String, queueType: QueueType = .classic, deliveryLimit: Int = 20) {
        self.prefix = prefix
        self.queueType = queueType
        self.deliveryLimit = deliveryLimit
    }

    public var commandsExchange: String { "\(prefix).commands" }
    public var eventsExchange: String { "\(prefix).events" }
    public var deadExchange: String { "\(prefix).dead" }
    public var deadQueue: String { "\(prefix).dead" }
    public var unroutedExchange: String { "\(prefix).commands.unrouted" }
    public var unroutedQueue: String { "\(prefix).commands.unrouted" }

    public func commandQueue(deviceID: String) -> String { "\(prefix).device.\(deviceID).commands" }

    /// A worker's own queue for admin requests from the other workers and their replies
    /// (`ControlService`): exclusive and auto-delete, so it exists exactly while the worker is
    /// connected, and a request to a stopped worker is returned by the broker at once.
    public func controlQueue(workerID: String) -> String { "\(prefix).worker.\(workerID).control" }

    /// Declares the shared exchanges and the dead-letter queue. Idempotent;
    /// a mismatch with what an operator declared by hand surfaces as
    /// `amqp.precondition_failed`.
    public func declare(on connection: AMQPConnection) async throws(AMQPError) {
        // The alternate exchange first: commands no device queue takes land there, not nowhere.
        // (A `<p>.commands` declared earlier without it must be deleted once: the broker refuses
        // to change an exchange's arguments, `amqp.precondition_failed`.)
        try await connection.declareExchange(AMQPExchangeDeclaration(name: unroutedExchange, type: .fanout))
        // One active consumer across workers, so `default` commands are forwarded in order.
        try await declareQueue(unroutedQueue, arguments: ["x-single-active-consumer": .bool(true)], on: connection)
        try await connection.bind(AMQPBinding(queue: unroutedQueue, exchange: unroutedExchange, routingKey: ""))
        try await connection.declareExchange(AMQPExchangeDeclaration(
            name: commandsExchange, type: .direct, arguments: ["alternate-exchange": .string(unroutedExchange)]))
        try await connection.declareExchange(AMQPExchangeDeclaration(name: eventsExchange, type: .topic))
        try await connection.declareExchange(AMQPExchangeDeclaration(name: deadExchange, type: .fanout))
        try await declareQueue(deadQueue, arguments: [:], on: connection)
        try await connection.bind(AMQPBinding(queue: deadQueue, exchange: deadExchange, routingKey: ""))
    }

    /// The arguments of a device's command queue: refused-by-the-broker messages
    /// go to `<p>.dead`; a single active consumer, so several workers never
    /// work one device's commands at once (the others stand by).
    public var deviceQueueArguments: AMQPTable {
        typed(["x-dead-letter-exchange": .string(deadExchange), "x-single-active-consumer": .bool(true)])
    }

    /// Classic queues keep the arguments they always had (no `x-queue-type`),
    /// so queues declared by an older worker stay equivalent.
    func typed(_ arguments: AMQPTable) -> AMQPTable {
        guard queueType == .quorum else { return arguments }
        var a = arguments
        a["x-queue-type"] = .string("quorum")
        a["x-delivery-limit"] = .int64(Int64(deliveryLimit))
        return a
    }

    /// Declares one of the bridge's durable queues. A queue that exists with
    /// the other type (or another delivery limit) is refused by the broker
    /// (`amqp.precondition_failed`): that becomes `amqp.queue_type_mismatch`
    /// naming the queue and the setting, and is not retried.
    private func declareQueue(_ name: String, arguments: AMQPTable, on connection: AMQPConnection) async throws(AMQPError) {
        do {
            try await connection.declareQueue(AMQPQueueDeclaration(
                name: name, durable: true, exclusive: false, autoDelete: false, arguments: typed(arguments)))
        } catch {
            guard error.code == .preconditionFailed,
                error.message.contains("x-queue-type") || error.message.contains("x-delivery-limit")
            else { throw error }
            let setting = queueType == .quorum
                ? "WABRIDGE_QUEUE_TYPE=quorum, WABRIDGE_QUEUE_DELIVERY_LIMIT=\(deliveryLimit)" : "WABRIDGE_QUEUE_TYPE=classic"
            throw AMQPError(
                code: .queueTypeMismatch,
                message: "queue \(name) already exists with another type or delivery limit than \(setting); "
                    + "the broker cannot change an existing queue: move its messages away and delete it, "
                    + "or set WABRIDGE_QUEUE_TYPE to what it is (broker said: \(error.message))",
                replyCode: error.replyCode, classID: error.classID, methodID: error.methodID)
        }
    }

    /// Declares a device's durable command queue and binds it to `<p>.commands`
    /// with the device ID. Idempotent.
    public func declareDeviceQueue(deviceID: String, on connection: AMQPConnection) async throws(AMQPError) {
        let queue = commandQueue(deviceID: deviceID)
        try await declareQueue(queue, arguments: ["x-dead-letter-exchange": .string(deadExchange), "x-single-active-consumer": .bool(true)], on: connection)
        try await connection.bind(AMQPBinding(queue: queue, exchange: commandsExchange, routingKey: deviceID))
    }

    /// Deletes a device's command queue (and with it its binding and waiting commands).
    public func deleteDeviceQueue(deviceID: String, on connection: AMQPConnection) async throws(AMQPError) {
        try await connection.deleteQueue(commandQueue(deviceID: deviceID))
    }
}
