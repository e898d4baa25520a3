/// A message delivered to a consumer. Settle it exactly once with `ack`,
/// `nack` or `reject`; until then the broker keeps it (and counts it against
/// the consumer's prefetch).
///
/// Settling does not wait for the broker: AMQP gives no reply to it. If the
/// connection dies before the settlement reaches the broker, the broker
/// redelivers the message (with `redelivered` set), so nothing is lost;
/// consumers must tolerate such duplicates.
public struct AMQPDelivery: Sendable {
    public let body: [UInt8]
    public let properties: AMQPProperties
    public let exchange: String
    public let routingKey: String
    public let consumerTag: String
    public let deliveryTag: UInt64
    /// True when the broker delivered this message before (to us or another
    /// consumer) without it being acknowledged.
    public let redelivered: Bool

    let settler: Settler

    /// Acknowledges the message. Throws `amqp.stale_delivery` when the
    /// channel it came on is already gone, or its consumer was cancelled:
    /// the broker will deliver it again. `multiple` settles this consumer's
    /// own earlier deliveries only, never those of a consumer sharing the channel.
    public func ack(multiple: Bool = false) throws(AMQPError) {
        try settler.settle(.ack(multiple: multiple), tag: deliveryTag)
    }

    /// Negative acknowledgement; `requeue: false` dead-letters the message
    /// when its queue has a dead-letter exchange.
    public func nack(requeue: Bool, multiple: Bool = false) throws(AMQPError) {
        try settler.settle(.nack(requeue: requeue, multiple: multiple), tag: deliveryTag)
    }

    public func reject(requeue: Bool) throws(AMQPError) {
        try settler.settle(.reject(requeue: requeue), tag: deliveryTag)
    }
}

enum SettleKind: Sendable {
    case ack(multiple: Bool)
    case nack(requeue: Bool, multiple: Bool)
    case reject(requeue: Bool)
}

/// Where a delivery's settlement goes: the connection generation, channel
/// and consumer it arrived on, so a settlement after a reconnect, a cancel or
/// a channel loss is refused instead of acknowledging some other message
/// that happens to reuse the tag.
struct Settler: Sendable {
    let mailbox: Mailbox
    let generation: UInt64
    let channel: UInt16
    let consumer: UInt64

    func settle(_ kind: SettleKind, tag: UInt64) throws(AMQPError) {
        let key = Mailbox.ConsumerKey(generation: generation, channel: channel, consumer: consumer)
        guard mailbox.liveConsumers.withLock({ $0.contains(key) }) else {
            throw AMQPError(
                code: .staleDelivery,
                message: "the delivery's channel or connection is gone; the broker will redeliver it", isRetryable: true)
        }
        mailbox.post(.settle(generation: generation, channel: channel, consumer: consumer, tag: tag, kind: kind))
    }
}
