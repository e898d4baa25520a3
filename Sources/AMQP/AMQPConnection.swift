import Foundation
import Logging
import Synchronization

/// A connection to a RabbitMQ broker with an `async` API.
///
/// One dedicated thread owns the underlying rabbitmq-c connection (which is
/// not thread-safe); every method here hands work to that thread and awaits
/// its answer. The connection reconnects by itself with backoff, declares
/// again what it declared, and resubscribes its consumers. A publish is
/// reported as done only when the broker confirmed it; one whose connection
/// died first fails with a retryable `amqp.connection_lost`.
public final class AMQPConnection: Sendable {
    public let configuration: AMQPConfiguration
    let mailbox: Mailbox
    private let hub: EventHub
    private let nextConsumerID = Atomic<UInt64>(1)

    private init(configuration: AMQPConfiguration, mailbox: Mailbox, hub: EventHub) {
        self.configuration = configuration
        self.mailbox = mailbox
        self.hub = hub
    }

    /// A connection nobody holds any more (consumers hold it too) closes
    /// itself, so its thread and socket do not outlive it.
    deinit {
        mailbox.post(.close({ _ in }))
    }

    /// Connects, failing fast with a typed error (bad URL, refused
    /// connection, wrong credentials, TLS failure). Reconnects happen only
    /// after this first success.
    public static func connect(
        _ configuration: AMQPConfiguration, logger: Logger = Logger(label: "wabridge.amqp")
    ) async throws(AMQPError) -> AMQPConnection {
        let mailbox = try Mailbox()
        let hub = EventHub()
        let connection = AMQPConnection(configuration: configuration, mailbox: mailbox, hub: hub)
        let result: Result<Void, AMQPError> = await withCheckedContinuation { cont in
            let thread = Thread {
                let loop = ConnectionLoop(config: configuration, mailbox: mailbox, events: hub, logger: logger)
                loop.run(firstConnect: { cont.resume(returning: $0) })
            }
            thread.name = "amqp-\(configuration.connectionName)"
            thread.start()
        }
        try result.get()
        return connection
    }

    /// A new stream of connection events (connected, disconnected,
    /// reconnecting, blocked, unblocked, consumer cancelled, closed).
    public func events() -> AsyncStream<AMQPConnectionEvent> { hub.subscribe() }

    private func call<T: Sendable>(_ make: (@escaping Reply<T>) -> Command) async throws(AMQPError) -> T {
        let result: Result<T, AMQPError> = await withCheckedContinuation { cont in
            mailbox.post(make { cont.resume(returning: $0) })
        }
        return try result.get()
    }

    // MARK: Topology

    public func declareExchange(_ d: AMQPExchangeDeclaration, passive: Bool = false) async throws(AMQPError) {
        try await call { .declareExchange(d, passive: passive, $0) }
    }

    public func deleteExchange(_ name: String, ifUnused: Bool = false) async throws(AMQPError) {
        try await call { .deleteExchange(name, ifUnused: ifUnused, $0) }
    }

    @discardableResult
    public func declareQueue(_ d: AMQPQueueDeclaration, passive: Bool = false) async throws(AMQPError) -> AMQPQueueDeclareResult {
        try await call { .declareQueue(d, passive: passive, $0) }
    }

    /// Deletes a queue; returns how many messages it held.
    @discardableResult
    public func deleteQueue(_ name: String, ifUnused: Bool = false, ifEmpty: Bool = false) async throws(AMQPError) -> UInt32 {
        try await call { .deleteQueue(name, ifUnused: ifUnused, ifEmpty: ifEmpty, $0) }
    }

    @discardableResult
    public func purgeQueue(_ name: String) async throws(AMQPError) -> UInt32 {
        try await call { .purgeQueue(name, $0) }
    }

    public func bind(_ b: AMQPBinding) async throws(AMQPError) {
        try await call { .bind(b, $0) }
    }

    public func unbind(_ b: AMQPBinding) async throws(AMQPError) {
        try await call { .unbind(b, $0) }
    }

    // MARK: Publishing

    /// Publishes one message and returns once the broker confirmed it.
    /// Throws `amqp.publish_nacked`, `amqp.publish_returned` (mandatory and
    /// unroutable) or a retryable `amqp.connection_lost`. Many calls may be
    /// in flight at once; they are pipelined on one confirm channel.
    public func publish(_ message: AMQPOutgoingMessage) async throws(AMQPError) {
        try await call { reply in .publish([PublishRequest(message: message, reply: reply)]) }
    }

    /// Publishes a batch in one hand-over to the connection thread and
    /// returns each message's outcome (nil = confirmed) in order.
    public func publish(contentsOf messages: [AMQPOutgoingMessage]) async -> [AMQPError?] {
        guard !messages.isEmpty else { return [] }
        let box = BatchCollector(count: messages.count)
        await withCheckedContinuation { (cont: CheckedContinuation<Void, Never>) in
            box.onDone = { cont.resume() }
            let requests = messages.enumerated().map { (i, m) in
                PublishRequest(message: m, reply: { box.set(i, $0) })
            }
            mailbox.post(.publish(requests))
        }
        return box.results
    }

    // MARK: Consuming

    /// Starts a consumer with manual acknowledgement and `prefetch`
    /// unacknowledged messages at most. Its deliveries survive reconnects
    /// (the broker redelivers what was not acknowledged); the sequence ends
    /// after `cancel()`, `close()`, or with `amqp.consumer_cancelled` when
    /// the broker cancels it.
    public func consume(
        queue: String, prefetch: UInt16 = 32, consumerTag: String = "", exclusive: Bool = false,
        arguments: AMQPTable = [:]
    ) async throws(AMQPError) -> AMQPConsumer {
        let id = nextConsumerID.add(1, ordering: .relaxed).oldValue
        let (stream, continuation) = AsyncThrowingStream<AMQPDelivery, any Error>.makeStream()
        let spec = ConsumerSpec(
            id: id, queue: queue, prefetch: prefetch, requestedTag: consumerTag, exclusive: exclusive,
            arguments: arguments, continuation: continuation)
        let tag: String = try await call { .consume(spec, $0) }
        return AMQPConsumer(id: id, queue: queue, consumerTag: tag, connection: self, stream: stream)
    }

    /// Closes gracefully: cancels consumers, waits (up to
    /// `closeTimeout`) for outstanding confirms, then closes the connection.
    public func close() async {
        let _: Result<Void, AMQPError> = await withCheckedContinuation { cont in
            mailbox.post(.close { cont.resume(returning: $0) })
        }
    }
}

/// Collects a batch's per-message outcomes from the connection thread.
private final class BatchCollector: @unchecked Sendable {
    // Guarded by `lock`; the class is @unchecked because the closure field
    // is set once before the batch is posted and read under the lock.
    private let lock = NSLock()
    private var remaining: Int
    private(set) var results: [AMQPError?]
    var onDone: (@Sendable () -> Void)?

    init(count: Int) {
        remaining = count
        results = Array(repeating: nil, count: count)
    }

    func set(_ i: Int, _ r: Result<Void, AMQPError>) {
        lock.lock()
        if case .failure(let e) = r { results[i] = e }
        remaining -= 1
        let done = remaining == 0 ? onDone : nil
        lock.unlock()
        done?()
    }
}

/// A running consumer: iterate it for deliveries.
public final class AMQPConsumer: AsyncSequence, Sendable {
    public typealias Element = AMQPDelivery
    public let queue: String
    /// The tag the broker knows this consumer by.
    public let consumerTag: String
    private let id: UInt64
    /// Keeps the connection alive while its consumer is in use.
    private let connection: AMQPConnection
    private let stream: AsyncThrowingStream<AMQPDelivery, any Error>

    init(id: UInt64, queue: String, consumerTag: String, connection: AMQPConnection, stream: AsyncThrowingStream<AMQPDelivery, any Error>) {
        self.id = id
        self.queue = queue
        self.consumerTag = consumerTag
        self.connection = connection
        self.stream = stream
    }

    public func makeAsyncIterator() -> AsyncThrowingStream<AMQPDelivery, any Error>.AsyncIterator {
        stream.makeAsyncIterator()
    }

    /// Stops deliveries; messages not yet acknowledged return to the queue.
    public func cancel() async throws(AMQPError) {
        let result: Result<Void, AMQPError> = await withCheckedContinuation { cont in
            connection.mailbox.post(.cancel(consumerID: id, { cont.resume(returning: $0) }))
        }
        try result.get()
    }
}
