import Foundation
import GRDB

/// One message in a device's history (the bridge fills it).
public struct HistoryMessage: Sendable, Equatable, Codable {
    public enum Direction: String, Sendable, Codable { case incoming = "in", outgoing = "out" }

    /// WhatsApp message id.
    public var id: String
    public var chat: String
    public var sender: String
    public var direction: Direction
    /// Seconds since 1970.
    public var timestamp: Int64
    /// `text`, `image`, `reaction`, ...
    public var kind: String
    /// `queued`, `sent`, `delivered`, `read`, `played`, `failed`, `received`...
    public var status: String
    /// The message body, JSON text.
    public var body: String

    public init(id: String, chat: String, sender: String, direction: Direction, timestamp: Int64,
                kind: String, status: String, body: String = "{}") {
        self.id = id
        self.chat = chat
        self.sender = sender
        self.direction = direction
        self.timestamp = timestamp
        self.kind = kind
        self.status = status
        self.body = body
    }
}

extension HistoryMessage: FetchableRecord, PersistableRecord {
    public static var databaseTableName: String { "message" }
}

extension HistoryMessage.Direction: DatabaseValueConvertible {}

/// An event waiting for the broker's confirm. `sequence` orders the outbox.
public struct OutboxEvent: Sendable, Equatable, Codable {
    public var sequence: Int64?
    /// The CloudEvent id (the same on a re-publish of the same fact).
    public var eventID: String
    public var routingKey: String
    public var payload: Data
    public var createdAt: Date

    public init(sequence: Int64? = nil, eventID: String, routingKey: String, payload: Data, createdAt: Date) {
        self.sequence = sequence
        self.eventID = eventID
        self.routingKey = routingKey
        self.payload = payload
        self.createdAt = createdAt
    }
}

extension OutboxEvent: FetchableRecord, MutablePersistableRecord {
    public static var databaseTableName: String { "outbox" }
    public mutating func didInsert(_ inserted: InsertionSuccess) { sequence = inserted.rowID }
}

/// What a command produced, kept so a redelivered command gets the same answer.
public struct IdempotencyRecord: Sendable, Equatable, Codable {
    public var commandID: String
    /// The WhatsApp message id the command sent, if any.
    public var messageID: String?
    /// The result, JSON text.
    public var result: String
    public var createdAt: Date
    /// The AMQP correlation id of the command, echoed on its results and status events.
    public var correlationID: String?

    public init(commandID: String, messageID: String?, result: String, createdAt: Date, correlationID: String? = nil) {
        self.commandID = commandID
        self.messageID = messageID
        self.result = result
        self.createdAt = createdAt
        self.correlationID = correlationID
    }
}

extension IdempotencyRecord: FetchableRecord, PersistableRecord {
    public static var databaseTableName: String { "idempotency" }
}

/// A chat the phone's history sync named (`conversation` table).
public struct HistoryConversationRecord: Sendable, Equatable, Codable {
    public var chat: String
    public var chatLID: String?
    public var name: String?
    /// Seconds since 1970.
    public var lastMessageAt: Int64?
    public var unreadCount: Int
    public var updatedAt: Date

    public init(chat: String, chatLID: String? = nil, name: String? = nil, lastMessageAt: Int64? = nil, unreadCount: Int = 0,
                updatedAt: Date = Date()) {
        self.chat = chat
        self.chatLID = chatLID
        self.name = name
        self.lastMessageAt = lastMessageAt
        self.unreadCount = unreadCount
        self.updatedAt = updatedAt
    }
}

extension HistoryConversationRecord: FetchableRecord, PersistableRecord {
    public static var databaseTableName: String { "conversation" }
}

/// The name a contact set for itself, as the phone's history sync told it (`push_name` table).
public struct PushNameRecord: Sendable, Equatable, Codable {
    public var jid: String
    public var name: String
    public var updatedAt: Date

    public init(jid: String, name: String, updatedAt: Date = Date()) {
        self.jid = jid
        self.name = name
        self.updatedAt = updatedAt
    }
}

extension PushNameRecord: FetchableRecord, PersistableRecord {
    public static var databaseTableName: String { "push_name" }
}

/// The bounds on history messages a device keeps (`WABRIDGE_HISTORY_DAYS`, `WABRIDGE_HISTORY_MAX_MESSAGES`).
public struct HistoryBounds: Sendable, Equatable {
    /// None older than this many seconds before now (nil: no age bound).
    public var maxAge: TimeInterval?
    /// At most this many, the newest kept.
    public var maxMessages: Int

    public init(maxAge: TimeInterval? = 7 * 86_400, maxMessages: Int = 1_000) {
        self.maxAge = maxAge
        self.maxMessages = maxMessages
    }
}

/// What one history-sync chunk added to a device's history.
public struct HistorySyncStored: Sendable, Equatable {
    public var conversations: Int
    /// Messages new to the history (a message already kept, live or from an earlier chunk, is not counted).
    public var messages: Int
    public var pushNames: Int
    /// Historical messages removed by the bounds after this chunk.
    public var pruned: Int
}
