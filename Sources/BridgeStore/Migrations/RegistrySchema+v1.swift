import GRDB

extension RegistrySchema {
    /// v1: one row per device slot.
    static func v1Devices(_ db: Database) throws {
        try db.create(table: "device") { t in
            t.primaryKey("id", .text)
            t.column("jid", .text)
            t.column("lid", .text)
            t.column("pushName", .text).notNull().defaults(to: "")
            t.column("state", .text).notNull()
            t.column("createdAt", .datetime).notNull()
            t.column("updatedAt", .datetime).notNull()
            t.column("settings", .text).notNull().defaults(to: "{}")
        }
        try db.create(index: "device_on_jid", on: "device", columns: ["jid"])
    }
}
