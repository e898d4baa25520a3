import Foundation
import Logging
import PostgresNIO

/// One device's history, outbox and idempotency records in PostgreSQL (the tables of
/// `history.sqlite`, each keyed by `device_id` first, which every query takes from `deviceID`).
public final class PostgresDataStore: DeviceDataStoring {
    public let deviceID: DeviceID
    let database: PostgresDatabase
    private var logger: Logger { database.logger }
    private var id: String { deviceID.rawValue }

    init(deviceID: DeviceID, database: PostgresDatabase) {
        self.deviceID = deviceID
        self.database = database
    }

    private static let messageColumns = "id, chat, sender, direction, timestamp, kind, status, body"

    private static func message(_ row: PostgresRow) throws -> HistoryMessage {
        let (id, chat, sender, direction, timestamp, kind, status, body) =
            try row.decode((String, String, String, String, Int64, String, String, String).self)
        guard let direction = HistoryMessage.Direction(rawValue: direction) else {
            throw StoreError(.corrupt, "a message row has direction \(direction)")
        }
        return HistoryMessage(id: id, chat: chat, sender: sender, direction: direction, timestamp: timestamp, kind: kind,
                              status: status, body: body)
    }

    // MARK: History

    public func saveMessage(_ m: HistoryMessage) async throws(StoreError) {
        let (id, logger) = (self.id, self.logger)
        try await database.write("saveMessage") { c in
            // As GRDB's `save`: an existing row takes the new values and keeps its `historical` mark.
            try await c.run("""
                INSERT INTO message (device_id, chat, id, sender, direction, timestamp, kind, status, body, historical)
                VALUES (\(id), \(m.chat), \(m.id), \(m.sender), \(m.direction.rawValue), \(m.timestamp), \(m.kind), \(m.status), \(m.body), false)
                ON CONFLICT (device_id, chat, id) DO UPDATE SET sender = excluded.sender, direction = excluded.direction,
                    timestamp = excluded.timestamp, kind = excluded.kind, status = excluded.status, body = excluded.body
                """, logger)
        }
    }

    @discardableResult
    public func updateMessageStatus(chat: String, id messageID: String, status: String) async throws(StoreError) -> Bool {
        let (id, logger) = (self.id, self.logger)
        return try await database.write("updateMessageStatus") { c in
            try await c.run("""
                UPDATE message SET status = \(status) WHERE device_id = \(id) AND chat = \(chat) AND id = \(messageID) RETURNING 1
                """, logger) > 0
        }
    }

    public func message(chat: String, id messageID: String) async throws(StoreError) -> HistoryMessage? {
        let (id, logger) = (self.id, self.logger)
        return try await database.read("message") { c in
            try await c.row("""
                SELECT \(unescaped: Self.messageColumns) FROM message WHERE device_id = \(id) AND chat = \(chat) AND id = \(messageID)
                """, logger).map(Self.message)
        }
    }

    public func messages(chat: String, limit: Int = 50) async throws(StoreError) -> [HistoryMessage] {
        let (id, logger, limit) = (self.id, self.logger, Int64(clamping: max(0, limit)))
        return try await database.read("messages") { c in
            Array(try await c.rows("""
                SELECT \(unescaped: Self.messageColumns) FROM message WHERE device_id = \(id) AND chat = \(chat)
                ORDER BY timestamp DESC, id COLLATE "C" DESC LIMIT \(limit)
                """, logger).map(Self.message).reversed())
        }
    }

    // MARK: History sync

    public func saveHistorySync(
        conversations: [HistoryConversationRecord], messages: [HistoryMessage], pushNames: [PushNameRecord],
        bounds: HistoryBounds, now: Date = Date()
    ) async throws(StoreError) -> HistorySyncStored {
        let (id, logger) = (self.id, self.logger)
        return try await database.write("saveHistorySync") { c in
            for v in conversations {
                try await c.run("""
                    INSERT INTO conversation (device_id, chat, chat_lid, name, last_message_at, unread_count, updated_at)
                    VALUES (\(id), \(v.chat), \(v.chatLID), \(v.name), \(v.lastMessageAt), \(Int64(v.unreadCount)), \(v.updatedAt))
                    ON CONFLICT (device_id, chat) DO UPDATE SET chat_lid = excluded.chat_lid, name = excluded.name,
                        last_message_at = excluded.last_message_at, unread_count = excluded.unread_count, updated_at = excluded.updated_at
                    """, logger)
            }
            for p in pushNames {
                try await c.run("""
                    INSERT INTO push_name (device_id, jid, name, updated_at) VALUES (\(id), \(p.jid), \(p.name), \(p.updatedAt))
                    ON CONFLICT (device_id, jid) DO UPDATE SET name = excluded.name, updated_at = excluded.updated_at
                    """, logger)
            }
            var inserted: [(chat: String, id: String)] = []
            for m in messages {
                let n = try await c.run("""
                    INSERT INTO message (device_id, chat, id, sender, direction, timestamp, kind, status, body, historical)
                    VALUES (\(id), \(m.chat), \(m.id), \(m.sender), \(m.direction.rawValue), \(m.timestamp), \(m.kind), \(m.status), \(m.body), true)
                    ON CONFLICT DO NOTHING RETURNING 1
                    """, logger)
                if n > 0 { inserted.append((m.chat, m.id)) }
            }
            var pruned = 0
            if let maxAge = bounds.maxAge {
                let cutoff = Int64(now.timeIntervalSince1970 - maxAge)
                pruned += try await c.run("""
                    DELETE FROM message WHERE device_id = \(id) AND historical AND timestamp < \(cutoff) RETURNING 1
                    """, logger)
            }
            let keep = Int64(max(bounds.maxMessages, 0))
            pruned += try await c.run("""
                DELETE FROM message m WHERE m.device_id = \(id) AND m.historical AND (m.chat, m.id) NOT IN
                    (SELECT k.chat, k.id FROM message k WHERE k.device_id = \(id) AND k.historical
                     ORDER BY k.timestamp DESC, k.id COLLATE "C" DESC LIMIT \(keep))
                RETURNING 1
                """, logger)
            var kept = inserted.count
            if pruned > 0 {
                kept = 0
                for (chat, messageID) in inserted {
                    kept += try await c.run("""
                        SELECT 1 FROM message WHERE device_id = \(id) AND chat = \(chat) AND id = \(messageID) AND historical
                        """, logger)
                }
            }
            return HistorySyncStored(conversations: conversations.count, messages: kept, pushNames: pushNames.count, pruned: pruned)
        }
    }

    public func conversations(limit: Int = 100) async throws(StoreError) -> [HistoryConversationRecord] {
        let (id, logger, limit) = (self.id, self.logger, Int64(clamping: max(0, limit)))
        return try await database.read("conversations") { c in
            // NULLS LAST: SQLite sorts NULL lowest, so last in a descending order.
            try await c.rows("""
                SELECT chat, chat_lid, name, last_message_at, unread_count, updated_at FROM conversation WHERE device_id = \(id)
                ORDER BY last_message_at DESC NULLS LAST, chat COLLATE "C" LIMIT \(limit)
                """, logger).map { row in
                let (chat, chatLID, name, last, unread, updatedAt) = try row.decode((String, String?, String?, Int64?, Int64, Date).self)
                return HistoryConversationRecord(chat: chat, chatLID: chatLID, name: name, lastMessageAt: last, unreadCount: Int(unread),
                                                 updatedAt: updatedAt)
            }
        }
    }

    public func pushName(for jid: String) async throws(StoreError) -> String? {
        let (id, logger) = (self.id, self.logger)
        return try await database.read("pushName") { c in
            try await c.row("SELECT name FROM push_name WHERE device_id = \(id) AND jid = \(jid)", logger)?.decode(String.self)
        }
    }

    public func historicalMessageCount() async throws(StoreError) -> Int {
        let (id, logger) = (self.id, self.logger)
        return try await database.read("historicalMessageCount") { c in
            Int(try await c.row("SELECT count(*) FROM message WHERE device_id = \(id) AND historical", logger)?.decode(Int64.self) ?? 0)
        }
    }

    // MARK: Outbox

    @discardableResult
    public func appendEvent(eventID: String, routingKey: String, payload: Data, now: Date = Date()) async throws(StoreError) -> OutboxEvent {
        let (id, logger) = (self.id, self.logger)
        return try await database.write("appendEvent") { c in
            try await Self.append(c, logger, id, NewOutboxEvent(eventID: eventID, routingKey: routingKey, payload: payload, createdAt: now))
        }
    }

    @discardableResult
    public func appendEvents(_ events: [NewOutboxEvent]) async throws(StoreError) -> [OutboxEvent] {
        let (id, logger) = (self.id, self.logger)
        return try await database.write("appendEvents") { c in
            var out: [OutboxEvent] = []
            for e in events { out.append(try await Self.append(c, logger, id, e)) }
            return out
        }
    }

    private static func outboxEvent(_ row: PostgresRow) throws -> OutboxEvent {
        let (sequence, eventID, routingKey, payload, createdAt) = try row.decode((Int64, String, String, Data, Date).self)
        return OutboxEvent(sequence: sequence, eventID: eventID, routingKey: routingKey, payload: payload, createdAt: createdAt)
    }

    private static func append(_ c: PostgresConnection, _ logger: Logger, _ id: String, _ e: NewOutboxEvent) async throws -> OutboxEvent {
        if let existing = try await c.row("""
            SELECT sequence, event_id, routing_key, payload, created_at FROM outbox WHERE device_id = \(id) AND event_id = \(e.eventID)
            """, logger) { return try outboxEvent(existing) }
        let event = OutboxEvent(eventID: e.eventID, routingKey: e.routingKey, payload: e.payload, createdAt: e.createdAt)
        if try await isPublished(c, logger, id, e.eventID) { return event }
        guard let row = try await c.row("""
            INSERT INTO outbox (device_id, event_id, routing_key, payload, created_at)
            VALUES (\(id), \(e.eventID), \(e.routingKey), \(e.payload), \(e.createdAt)) RETURNING sequence
            """, logger) else { throw StoreError(.database, "appendEvent: no sequence returned") }
        var inserted = event
        inserted.sequence = try row.decode(Int64.self)
        return inserted
    }

    private static func isPublished(_ c: PostgresConnection, _ logger: Logger, _ id: String, _ eventID: String) async throws -> Bool {
        try await c.row("SELECT 1 FROM published_event WHERE device_id = \(id) AND event_id = \(eventID)", logger) != nil
    }

    public func isPublished(eventID: String) async throws(StoreError) -> Bool {
        let (id, logger) = (self.id, self.logger)
        return try await database.read("isPublished") { c in try await Self.isPublished(c, logger, id, eventID) }
    }

    public func peekEvents(limit: Int = 100) async throws(StoreError) -> [OutboxEvent] {
        let (id, logger, limit) = (self.id, self.logger, Int64(clamping: max(0, limit)))
        return try await database.read("peekEvents") { c in
            try await c.rows("""
                SELECT sequence, event_id, routing_key, payload, created_at FROM outbox WHERE device_id = \(id)
                ORDER BY sequence LIMIT \(limit)
                """, logger).map(Self.outboxEvent)
        }
    }

    @discardableResult
    public func deleteEvents(sequences: [Int64], now: Date = Date()) async throws(StoreError) -> Int {
        guard !sequences.isEmpty else { return 0 }
        let (id, logger, kept) = (self.id, self.logger, Int64(DeviceDataStore.publishedIDsKept))
        return try await database.write("deleteEvents") { c in
            let ids = try await c.rows("""
                DELETE FROM outbox WHERE device_id = \(id) AND sequence = ANY(\(sequences)) RETURNING event_id
                """, logger).map { try $0.decode(String.self) }
            for eventID in ids {
                try await c.run("""
                    INSERT INTO published_event (device_id, event_id, published_at) VALUES (\(id), \(eventID), \(now))
                    ON CONFLICT DO NOTHING
                    """, logger)
            }
            try await c.run("""
                DELETE FROM published_event WHERE device_id = \(id) AND rank <=
                    (SELECT max(rank) FROM published_event WHERE device_id = \(id)) - \(kept)
                """, logger)
            return ids.count
        }
    }

    public func outboxCount() async throws(StoreError) -> Int {
        let (id, logger) = (self.id, self.logger)
        return try await database.read("outboxCount") { c in
            Int(try await c.row("SELECT count(*) FROM outbox WHERE device_id = \(id)", logger)?.decode(Int64.self) ?? 0)
        }
    }

    // MARK: Idempotency

    private static let idempotencyColumns = "command_id, message_id, result, created_at, correlation_id"

    private static func record(_ row: PostgresRow) throws -> IdempotencyRecord {
        let (commandID, messageID, result, createdAt, correlationID) = try row.decode((String, String?, String, Date, String?).self)
        return IdempotencyRecord(commandID: commandID, messageID: messageID, result: result, createdAt: createdAt, correlationID: correlationID)
    }

    public func recordCommandResult(
        commandID: String, messageID: String?, result: String, correlationID: String? = nil, now: Date = Date()
    ) async throws(StoreError) -> (record: IdempotencyRecord, inserted: Bool) {
        try await recordCommandResults([IdempotencyRecord(commandID: commandID, messageID: messageID, result: result, createdAt: now,
                                                          correlationID: correlationID)])[0]
    }

    public func recordCommandResults(_ records: [IdempotencyRecord]) async throws(StoreError) -> [(record: IdempotencyRecord, inserted: Bool)] {
        let (id, logger) = (self.id, self.logger)
        return try await database.write("recordCommandResults") { c in
            var out: [(record: IdempotencyRecord, inserted: Bool)] = []
            for r in records {
                let inserted = try await c.run("""
                    INSERT INTO idempotency (device_id, command_id, message_id, result, created_at, correlation_id)
                    VALUES (\(id), \(r.commandID), \(r.messageID), \(r.result), \(r.createdAt), \(r.correlationID))
                    ON CONFLICT DO NOTHING RETURNING 1
                    """, logger) > 0
                guard let stored = try await c.row("""
                    SELECT \(unescaped: Self.idempotencyColumns) FROM idempotency WHERE device_id = \(id) AND command_id = \(r.commandID)
                    """, logger) else { throw StoreError(.corrupt, "idempotency row vanished") }
                out.append((try Self.record(stored), inserted))
            }
            return out
        }
    }

    public func command(forMessageID messageID: String) async throws(StoreError) -> IdempotencyRecord? {
        let (id, logger) = (self.id, self.logger)
        return try await database.read("commandForMessage") { c in
            try await c.row("""
                SELECT \(unescaped: Self.idempotencyColumns) FROM idempotency WHERE device_id = \(id) AND message_id = \(messageID) LIMIT 1
                """, logger).map(Self.record)
        }
    }

    public func commandResults(_ commandIDs: [String]) async throws(StoreError) -> [String: IdempotencyRecord] {
        guard !commandIDs.isEmpty else { return [:] }
        let (id, logger) = (self.id, self.logger)
        return try await database.read("commandResults") { c in
            var out: [String: IdempotencyRecord] = [:]
            for row in try await c.rows("""
                SELECT \(unescaped: Self.idempotencyColumns) FROM idempotency WHERE device_id = \(id) AND command_id = ANY(\(commandIDs))
                """, logger) {
                let r = try Self.record(row)
                out[r.commandID] = r
            }
            return out
        }
    }
}
