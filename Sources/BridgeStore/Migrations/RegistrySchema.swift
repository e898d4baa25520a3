import GRDB

/// Migrations of `registry.sqlite`. Named, appended, never edited once shipped
/// (and never `eraseDatabaseOnSchemaChange`).
enum RegistrySchema {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-devices", migrate: v1Devices)
        migrator.registerMigration("v2-outbox", migrate: v2Outbox)
        migrator.registerMigration("v3-leases", migrate: v3Leases)
        return migrator
    }
}
