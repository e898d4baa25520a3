import GRDB

extension HistorySchema {
    /// v3: the ids of events the broker confirmed, newest kept (bounded by
    /// `DeviceDataStore.publishedIDsKept`), so a fact recorded again after it
    /// left the outbox (a WhatsApp message redelivered after a crash) is not
    /// published twice.
    static func v3(_ db: Database) throws {
        try db.create(table: "published_event") { t in
            t.autoIncrementedPrimaryKey("rank")
            t.column("eventID", .text).notNull().unique()
            t.column("publishedAt", .datetime).notNull()
        }
    }
}
