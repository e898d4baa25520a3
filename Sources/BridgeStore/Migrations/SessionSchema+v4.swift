import GRDB

extension SessionSchema {
    /// v4: the device's PN↔LID table (`LIDMappingStore`), one row per account, by user part
    /// (whatsmeow's `whatsmeow_lid_map`). A number or a LID appears once: a newer mapping
    /// replaces the rows naming either side.
    static func v4LIDMapping(_ db: Database) throws {
        try db.create(table: "lidMapping") { t in
            t.primaryKey("lidUser", .text)
            t.column("pnUser", .text).notNull().unique()
        }
    }
}
