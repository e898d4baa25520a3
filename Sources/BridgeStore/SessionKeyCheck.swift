import Foundation
import GRDB

/// The `meta` rows of `session.sqlite` that say how key material is stored:
/// `encryption` (`none` or `aes-256-gcm`) and `keyCheck`, a known value sealed
/// with the device key. Opening checks them, so a wrong or missing master key
/// fails at once with `store.wrong_master_key` instead of later with garbage.
enum SessionKeyCheck {
    static let checkValue = Data("wabridge.store.key-check.v1".utf8)
    static let context = "meta.keyCheck"

    static func verifyOrInstall(_ queue: DatabaseQueue, cipher: KeyCipher) throws(StoreError) {
        let mode = cipher.encrypts ? "aes-256-gcm" : "none"
        let stored: (String, Data)? = try StoreError.wrapping("key check") {
            try queue.write { db -> (String, Data)? in
                let rows = try Row.fetchAll(db, sql: "SELECT key, value FROM meta WHERE key IN ('encryption', 'keyCheck')")
                var values: [String: Data] = [:]
                for row in rows { values[row["key"]] = row["value"] }
                if let modeData = values["encryption"], let check = values["keyCheck"] {
                    return (String(decoding: modeData, as: UTF8.self), check)
                }
                let check = try cipher.seal(checkValue, context: context)
                try db.execute(sql: "INSERT OR REPLACE INTO meta(key, value) VALUES ('encryption', ?), ('keyCheck', ?)",
                               arguments: [Data(mode.utf8), check])
                return nil
            }
        }
        guard let stored else { return }
        switch (stored.0, cipher.encrypts) {
        case ("none", true):
            throw StoreError(.encryptionMismatch, "the device's keys were stored without encryption; a master key is now configured")
        case ("aes-256-gcm", false):
            throw StoreError(.wrongMasterKey, "the device's keys are encrypted and no master key is configured")
        case ("none", false), ("aes-256-gcm", true):
            let opened = try cipher.open(stored.1, context: context)
            guard opened == checkValue else { throw StoreError(.wrongMasterKey, "key check value differs") }
        default:
            throw StoreError(.corrupt, "unknown encryption mode in session.sqlite")
        }
    }
}
