import GRDB

extension HistorySchema {
    /// v1: message history, the event outbox and the idempotency table.
    static func v1(_ db: Database) throws {
        try db.create(table: "message") { t in
            t.column("id", .text).notNull()
            t.column("chat", .text).notNull()
            t.column("sender", .text).notNull()
            t.column("direction", .text).notNull()  // "in" | "out"
            t.column("timestamp", .integer).notNull()  // seconds since 1970
            t.column("kind", .text).notNull()
            t.column("status", .text).notNull()
            t.column("body", .text).notNull().defaults(to: "{}")  // JSON
            t.primaryKey(["chat", "id"])
        }
        try db.create(index: "message_on_chat_timestamp", on: "message", columns: ["chat", "timestamp"])
        try db.create(table: "outbox") { t in
            t.autoIncrementedPrimaryKey("sequence")
            t.column("eventID", .text).notNull().unique()
            t.column("routingKey", .text).notNull()
            t.column("payload", .blob).notNull()
            t.column("createdAt", .datetime).notNull()
        }
        try db.create(table: "idempotency") { t in
            t.primaryKey("commandID", .text)
            t.column("messageID", .text)
            t.column("result", .text).notNull()  // JSON
            t.column("createdAt", .datetime).notNull()
        }
    }
}
