import GRDB

extension SessionSchema {
    /// v2: decrypted payloads not yet handed over (`PendingPlaintextStore`),
    /// written in the same transaction as the Signal change that produced
    /// them. `plaintextBlob` is sealed like the key material.
    static func v2PendingPlaintexts(_ db: Database) throws {
        try db.create(table: "pendingPlaintext") { t in
            t.column("stanza", .text).notNull()
            t.column("part", .text).notNull()
            t.column("plaintextBlob", .blob).notNull()
            t.column("storedAt", .double).notNull()
            t.primaryKey(["stanza", "part"])
        }
        try db.create(index: "pendingPlaintextStoredAt", on: "pendingPlaintext", columns: ["storedAt"])
    }
}
