import Foundation
import GRDB

/// One device's `history.sqlite`: message history, the event outbox and the
/// idempotency table. Every write has a name; the file may be closed while
/// idle and reopened on the next call.
public final class DeviceDataStore: Sendable {
    public let deviceID: DeviceID
    private let cache: DatabaseCache

    init(deviceID: DeviceID, cache: DatabaseCache) {
        self.deviceID = deviceID
        self.cache = cache
    }

    private func read<T: Sendable>(_ what: String, _ body: @escaping @Sendable (Database) throws -> T) async throws(StoreError) -> T {
        let queue = try cache.database(for: .init(device: deviceID, kind: .history)).queue
        return try await StoreError.wrapping(what) { try await queue.read(body) }
    }

    private func write<T: Sendable>(_ what: String, _ body: @escaping @Sendable (Database) throws -> T) async throws(StoreError) -> T {
        let queue = try cache.database(for: .init(device: deviceID, kind: .history)).queue
        return try await StoreError.wrapping(what) { try await queue.write(body) }
    }

    // MARK: History

    /// Inserts or replaces a message (same chat and id).
    public func saveMessage(_ message: HistoryMessage) async throws(StoreError) {
        try await write("saveMessage") { db in try message.save(db) }
    }

    /// Sets a message's status; false when there is no such message.
    @discardableResult
    public func updateMessageStatus(chat: String, id: String, status: String) async throws(StoreError) -> Bool {
        try await write("updateMessageStatus") { db in
            try db.execute(sql: "UPDATE message SET status = ? WHERE chat = ? AND id = ?", arguments: [status, chat, id])
            return db.changesCount > 0
        }
    }

    public func message(chat: String, id: String) async throws(StoreError) -> HistoryMessage? {
        try await read("message") { db in try HistoryMessage.fetchOne(db, key: ["chat": chat, "id": id]) }
    }

    /// The newest `limit` messages of a chat, oldest first.
    public func messages(chat: String, limit: Int = 50) async throws(StoreError) -> [HistoryMessage] {
        try await read("messages") { db in
            Array(try HistoryMessage.filter(Column("chat") == chat)
                .order(Column("timestamp").desc, Column("id").desc).limit(limit)
                .fetchAll(db).reversed())
        }
    }

    // MARK: Outbox

    /// Appends an event; an event id already in the outbox is not appended
    /// twice (the existing row is returned).
    @discardableResult
    public func appendEvent(eventID: String, routingKey: String, payload: Data, now: Date = Date()) async throws(StoreError) -> OutboxEvent {
        try await write("appendEvent") { db in
            if let existing = try OutboxEvent.filter(Column("eventID") == eventID).fetchOne(db) { return existing }
            var event = OutboxEvent(eventID: eventID, routingKey: routingKey, payload: payload, createdAt: now)
            try event.insert(db)
            return event
        }
    }

    /// The oldest `limit` events, in append order (they stay until deleted).
    public func peekEvents(limit: Int = 100) async throws(StoreError) -> [OutboxEvent] {
        try await read("peekEvents") { db in
            try OutboxEvent.order(Column("sequence")).limit(limit).fetchAll(db)
        }
    }

    /// Removes confirmed events; returns how many went.
    @discardableResult
    public func deleteEvents(sequences: [Int64]) async throws(StoreError) -> Int {
        try await write("deleteEvents") { db in try OutboxEvent.deleteAll(db, keys: sequences) }
    }

    public func outboxCount() async throws(StoreError) -> Int {
        try await read("outboxCount") { db in try OutboxEvent.fetchCount(db) }
    }

    // MARK: Idempotency

    /// Records a command's result unless one is already recorded. Returns the
    /// stored record (the first one on a repeat) and whether this call inserted it.
    public func recordCommandResult(
        commandID: String, messageID: String?, result: String, correlationID: String? = nil, now: Date = Date()
    ) async throws(StoreError) -> (record: IdempotencyRecord, inserted: Bool) {
        try await write("recordCommandResult") { db in
            let fresh = IdempotencyRecord(commandID: commandID, messageID: messageID, result: result, createdAt: now,
                                          correlationID: correlationID)
            try fresh.insert(db, onConflict: .ignore)
            let inserted = db.changesCount > 0
            guard let stored = try IdempotencyRecord.fetchOne(db, key: commandID) else {
                throw StoreError(.corrupt, "idempotency row vanished")
            }
            return (stored, inserted)
        }
    }

    /// The command that sent WhatsApp message `messageID`, if one did.
    public func command(forMessageID messageID: String) async throws(StoreError) -> IdempotencyRecord? {
        try await read("commandForMessage") { db in
            try IdempotencyRecord.filter(Column("messageID") == messageID).fetchOne(db)
        }
    }

    /// The recorded result of a command, or nil when it never completed.
    public func commandResult(_ commandID: String) async throws(StoreError) -> IdempotencyRecord? {
        try await read("commandResult") { db in try IdempotencyRecord.fetchOne(db, key: commandID) }
    }
}
