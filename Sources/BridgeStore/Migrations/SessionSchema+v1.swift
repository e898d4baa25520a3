import GRDB

extension SessionSchema {
    /// v1: the device's own keys (one row), and the Signal stores. Columns
    /// named `*Blob` hold key material, sealed by `KeyCipher`.
    static func v1Keys(_ db: Database) throws {
        // Store-level facts: encryption mode and a key check value.
        try db.create(table: "meta") { t in
            t.primaryKey("key", .text)
            t.column("value", .blob).notNull()
        }
        try db.create(table: "account") { t in
            t.primaryKey("id", .integer).check { $0 == 1 }
            t.column("noiseKeyBlob", .blob).notNull()
            t.column("identityKeyBlob", .blob).notNull()
            t.column("registrationID", .integer).notNull()
            t.column("signedPreKeyID", .integer).notNull()
            t.column("signedPreKeyBlob", .blob).notNull()
            t.column("signedPreKeySignature", .blob).notNull()
            t.column("advSecretBlob", .blob).notNull()
            t.column("account", .blob)
            t.column("jid", .text)
            t.column("lid", .text)
            t.column("pushName", .text).notNull()
            t.column("platform", .text).notNull()
            t.column("businessName", .text).notNull()
        }
        try db.create(table: "identity") { t in
            t.primaryKey("address", .text)
            t.column("publicKey", .blob).notNull()
        }
        try db.create(table: "preKey") { t in
            t.primaryKey("id", .integer)
            t.column("recordBlob", .blob).notNull()
        }
        try db.create(table: "signedPreKey") { t in
            t.primaryKey("id", .integer)
            t.column("recordBlob", .blob).notNull()
        }
        try db.create(table: "session") { t in
            t.primaryKey("address", .text)
            t.column("recordBlob", .blob).notNull()
        }
        try db.create(table: "senderKey") { t in
            t.column("groupID", .text).notNull()
            t.column("sender", .text).notNull()
            t.column("recordBlob", .blob).notNull()
            t.primaryKey(["groupID", "sender"])
        }
    }
}
