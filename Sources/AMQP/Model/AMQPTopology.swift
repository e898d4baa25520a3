/// Declarations the connection records and replays after a reconnect, so a
/// broker restart (which loses non-durable entities) heals by itself.
public enum AMQPExchangeType: Sendable, Equatable {
    case direct, fanout, topic, headers
    case custom(String)

    public var name: String {
        switch self {
        case .direct: "direct"
        case .fanout: "fanout"
        case .topic: "topic"
        case .headers: "headers"
        case .custom(let n): n
        }
    }
}

public struct AMQPExchangeDeclaration: Sendable, Equatable {
    public var name: String
    public var type: AMQPExchangeType
    public var durable: Bool
    public var autoDelete: Bool
    public var `internal`: Bool
    public var arguments: AMQPTable

    public init(
        name: String, type: AMQPExchangeType, durable: Bool = true, autoDelete: Bool = false,
        internal: Bool = false, arguments: AMQPTable = [:]
    ) {
        self.name = name
        self.type = type
        self.durable = durable
        self.autoDelete = autoDelete
        self.internal = `internal`
        self.arguments = arguments
    }
}

public struct AMQPQueueDeclaration: Sendable, Equatable {
    /// Empty asks the broker to name the queue (`amq.gen-…`); after a
    /// reconnect such a queue is declared anew and gets a new name.
    public var name: String
    public var durable: Bool
    public var exclusive: Bool
    public var autoDelete: Bool
    /// `x-dead-letter-exchange`, `x-queue-type`, `x-single-active-consumer`,
    /// `x-max-length`, … exactly as RabbitMQ documents them.
    public var arguments: AMQPTable

    public init(
        name: String, durable: Bool = true, exclusive: Bool = false, autoDelete: Bool = false,
        arguments: AMQPTable = [:]
    ) {
        self.name = name
        self.durable = durable
        self.exclusive = exclusive
        self.autoDelete = autoDelete
        self.arguments = arguments
    }
}

public struct AMQPQueueDeclareResult: Sendable, Equatable {
    public var name: String
    public var messageCount: UInt32
    public var consumerCount: UInt32
}

public struct AMQPBinding: Sendable, Equatable, Hashable {
    public var queue: String
    public var exchange: String
    public var routingKey: String
    public var arguments: AMQPTable

    public init(queue: String, exchange: String, routingKey: String, arguments: AMQPTable = [:]) {
        self.queue = queue
        self.exchange = exchange
        self.routingKey = routingKey
        self.arguments = arguments
    }
}
