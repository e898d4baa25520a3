import GRDB

extension SessionSchema {
    /// v7: the device's fence, the highest owner generation that ever took the device
    /// (`BridgeStore.raiseFence`). A key write made with a lower generation is refused in
    /// the same transaction, so an owner that lost its lease cannot change the ratchets.
    static func v7Fence(_ db: Database) throws {
        try db.create(table: "fence") { t in
            t.primaryKey("id", .integer).check { $0 == 1 }
            t.column("generation", .integer).notNull()
        }
        try db.execute(sql: "INSERT INTO fence(id, generation) VALUES (1, 0)")
    }
}
