import GRDB

extension RegistrySchema {
    /// v3: device leases (one owner per device, with its generation) and worker heartbeats,
    /// for several workers sharing one data folder. A lease row outlives its release so the
    /// generation only grows; it goes with its device.
    static func v3Leases(_ db: Database) throws {
        try db.create(table: "lease") { t in
            t.primaryKey("deviceID", .text).references("device", onDelete: .cascade)
            t.column("owner", .text).notNull()
            t.column("generation", .integer).notNull()
            t.column("expiresAt", .double).notNull()
        }
        try db.create(index: "lease_on_owner", on: "lease", columns: ["owner"])
        try db.create(table: "worker") { t in
            t.primaryKey("id", .text)
            t.column("expiresAt", .double).notNull()
            t.column("draining", .boolean).notNull().defaults(to: false)
        }
    }
}
