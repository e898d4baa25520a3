import GRDB

/// Migrations of a device's `session.sqlite` (key material). Named, appended,
/// never edited once shipped: erasing this database would lose Signal keys.
enum SessionSchema {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-keys", migrate: v1Keys)
        migrator.registerMigration("v2-pending-plaintexts", migrate: v2PendingPlaintexts)
        migrator.registerMigration("v3-prekey-counter", migrate: v3PreKeyCounter)
        migrator.registerMigration("v4-lid-mapping", migrate: v4LIDMapping)
        migrator.registerMigration("v5-privacy-tokens", migrate: v5PrivacyTokens)
        migrator.registerMigration("v6-app-state-keys", migrate: v6AppState)
        migrator.registerMigration("v7-fence", migrate: v7Fence)
        return migrator
    }
}
