import GRDB

extension SessionSchema {
    /// v5: privacy tokens per peer (whatsmeow's `whatsmeow_privacy_tokens`) and the account's
    /// NCT salt (`whatsmeow_nct_salt`). Token and salt are sealed like every other secret here.
    static func v5PrivacyTokens(_ db: Database) throws {
        try db.create(table: "privacyToken") { t in
            t.primaryKey("user", .text)
            t.column("tokenBlob", .blob)
            t.column("timestamp", .integer).notNull()
            t.column("senderTimestamp", .integer)
        }
        try db.create(table: "nctSalt") { t in
            t.primaryKey("id", .integer).check { $0 == 1 }
            t.column("saltBlob", .blob).notNull()
        }
    }
}
