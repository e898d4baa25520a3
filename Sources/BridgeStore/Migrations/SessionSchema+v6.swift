import GRDB

extension SessionSchema {
    /// v6: app-state sync (whatsmeow `whatsmeow_app_state_sync_keys`, `_app_state_version`,
    /// `_app_state_mutation_macs`, `_contacts`) and the chat settings app state carries. Sync keys
    /// are sealed; MACs and hashes are not secret (they are what the server holds too).
    static func v6AppState(_ db: Database) throws {
        try db.create(table: "appStateSyncKey") { t in
            t.primaryKey("keyID", .blob)
            t.column("keyBlob", .blob).notNull()
            t.column("fingerprint", .blob).notNull()
            t.column("timestamp", .integer).notNull()
        }
        try db.create(table: "appStateVersion") { t in
            t.primaryKey("collection", .text)
            t.column("version", .integer).notNull()
            t.column("hash", .blob).notNull()
        }
        try db.create(table: "appStateMutationMAC") { t in
            t.column("collection", .text).notNull()
            t.column("indexMAC", .blob).notNull()
            t.column("valueMAC", .blob).notNull()
            t.primaryKey(["collection", "indexMAC"])
        }
        try db.create(table: "appStateContact") { t in
            t.primaryKey("jid", .text)
            t.column("nameBlob", .blob).notNull()
        }
        try db.create(table: "appStateChat") { t in
            t.primaryKey("jid", .text)
            t.column("mutedUntil", .double)
            t.column("pinned", .boolean).notNull().defaults(to: false)
            t.column("archived", .boolean).notNull().defaults(to: false)
        }
        try db.create(table: "appStateSetting") { t in
            t.primaryKey("name", .text)
            t.column("valueBlob", .blob).notNull()
        }
    }
}
