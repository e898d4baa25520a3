import GRDB

extension RegistrySchema {
    /// v2: the registry's own event outbox, for events that must outlive a
    /// device folder (`device.created`, `device.deleted`, and whatever a
    /// deleted device had not published yet).
    static func v2Outbox(_ db: Database) throws {
        try db.create(table: "outbox") { t in
            t.autoIncrementedPrimaryKey("sequence")
            t.column("eventID", .text).notNull().unique()
            t.column("deviceID", .text).notNull()
            t.column("routingKey", .text).notNull()
            t.column("payload", .blob).notNull()
            t.column("createdAt", .datetime).notNull()
        }
        try db.create(index: "outbox_on_deviceID", on: "outbox", columns: ["deviceID"])
    }
}
