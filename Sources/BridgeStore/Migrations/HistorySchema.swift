import GRDB

/// Migrations of a device's `history.sqlite` (messages, event outbox,
/// idempotency). Named, appended, never edited once shipped.
enum HistorySchema {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-history-outbox-idempotency", migrate: v1)
        migrator.registerMigration("v2-idempotency-correlation", migrate: v2)
        migrator.registerMigration("v3-published-events", migrate: v3)
        migrator.registerMigration("v4-history-sync", migrate: v4)
        return migrator
    }
}
