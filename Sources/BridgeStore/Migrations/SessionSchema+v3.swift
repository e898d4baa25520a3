import GRDB

extension SessionSchema {
    /// v3: the next one-time prekey id, kept apart from the prekeys so that
    /// consuming (deleting) the highest one does not bring its id back. A
    /// store from v1/v2 starts after its highest stored prekey (ids consumed
    /// above it before this migration cannot be known).
    static func v3PreKeyCounter(_ db: Database) throws {
        try db.create(table: "preKeyCounter") { t in
            t.primaryKey("id", .integer).check { $0 == 1 }
            t.column("nextID", .integer).notNull()
        }
        try db.execute(sql: """
            INSERT INTO preKeyCounter(id, nextID)
            SELECT 1, COALESCE(MAX(id), 0) % 16777215 + 1 FROM preKey
            """)
    }
}
