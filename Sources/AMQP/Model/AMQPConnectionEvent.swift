/// What happens to a connection over its life, for logs, metrics and
/// health checks.
public enum AMQPConnectionEvent: Sendable, Equatable {
    /// Connected (again); `generation` counts connections since `connect`.
    case connected(generation: UInt64)
    /// The connection was lost; in-flight publishes failed with a retryable error.
    case disconnected(AMQPError)
    /// A reconnect attempt is scheduled after `delay`.
    case reconnecting(attempt: Int, delay: Duration)
    /// The broker stopped accepting publishes (memory or disk alarm).
    case blocked(reason: String)
    case unblocked
    /// The broker cancelled a consumer (its queue was deleted, or a
    /// single-active-consumer / stream event).
    case consumerCancelled(consumerTag: String, queue: String)
    /// `close()` finished; no more events follow.
    case closed
}
