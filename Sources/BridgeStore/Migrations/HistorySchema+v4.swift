import GRDB

extension HistorySchema {
    /// v4: what the phone's history sync brings. Conversations and push names get their own
    /// tables; history messages go into `message` like live ones, marked `historical` so the
    /// history bounds (days, count) prune only them.
    static func v4(_ db: Database) throws {
        try db.create(table: "conversation") { t in
            t.primaryKey("chat", .text)
            t.column("chatLID", .text)
            t.column("name", .text)
            t.column("lastMessageAt", .integer)  // seconds since 1970
            t.column("unreadCount", .integer).notNull().defaults(to: 0)
            t.column("updatedAt", .datetime).notNull()
        }
        try db.create(table: "push_name") { t in
            t.primaryKey("jid", .text)
            t.column("name", .text).notNull()
            t.column("updatedAt", .datetime).notNull()
        }
        try db.alter(table: "message") { t in t.add(column: "historical", .boolean).notNull().defaults(to: false) }
        try db.create(index: "message_historical_on_timestamp", on: "message", columns: ["historical", "timestamp"])
    }
}
