import Foundation
import GRDB
import WABinary
import WAClient

/// App-state sync in `session.sqlite` (v6). Sync keys, contact names and our push name are
/// sealed with the device's key cipher, the row's key in the context (a blob cannot be moved to
/// another row); versions, hashes and MACs are what the server holds too and stay plain.
extension SQLiteSessionStore: AppStateStore {
    private struct Names: Codable { var full: String; var first: String }

    public func storeAppStateSyncKeys(_ keys: [AppStateSyncKey]) async throws {
        guard !keys.isEmpty else { return }
        let cipher = self.cipher
        let rows = try keys.map { key in
            (key.id, try cipher.seal(key.data, context: "appStateSyncKey.\(key.id.base64EncodedString())"), key.fingerprint, key.timestamp)
        }
        try await write("storeAppStateSyncKeys") { db in
            for (id, blob, fingerprint, timestamp) in rows {
                try db.execute(sql: "INSERT OR REPLACE INTO appStateSyncKey(keyID, keyBlob, fingerprint, timestamp) VALUES (?, ?, ?, ?)",
                               arguments: [id, blob, fingerprint, timestamp])
            }
        }
    }

    public func appStateSyncKey(id: Data) async throws -> AppStateSyncKey? {
        let cipher = self.cipher
        return try await read("appStateSyncKey") { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT keyBlob, fingerprint, timestamp FROM appStateSyncKey WHERE keyID = ?",
                                             arguments: [id]) else { return nil }
            let data = try cipher.open(row["keyBlob"], context: "appStateSyncKey.\(id.base64EncodedString())")
            return AppStateSyncKey(id: id, data: data, fingerprint: row["fingerprint"], timestamp: row["timestamp"])
        }
    }

    public func appStateVersion(_ collection: String) async throws -> AppStateHashState {
        try await read("appStateVersion") { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT version, hash FROM appStateVersion WHERE collection = ?",
                                             arguments: [collection]) else { return AppStateHashState() }
            return AppStateHashState(version: UInt64(row["version"] as Int64), hash: row["hash"])
        }
    }

    public func appStateValueMAC(_ collection: String, indexMAC: Data) async throws -> Data? {
        try await read("appStateValueMAC") { db in
            try Data.fetchOne(db, sql: "SELECT valueMAC FROM appStateMutationMAC WHERE collection = ? AND indexMAC = ?",
                              arguments: [collection, indexMAC])
        }
    }

    public func commitAppState(_ collection: String, state: AppStateHashState, removed: [Data], added: [AppStateMutationMAC],
                               changes: [AppStateChange]) async throws {
        let cipher = self.cipher
        // Sealed before the transaction: sealing may throw, and the transaction should only write.
        let sealed: [String: Data] = try changes.reduce(into: [:]) { out, change in
            switch change {
            case .contact(let contact):
                let key = contact.jid.description
                out[key] = try cipher.seal(JSONEncoder().encode(Names(full: contact.fullName, first: contact.firstName)),
                                           context: "appStateContact.\(key)")
            case .pushName(let name): out["setting.pushName"] = try cipher.seal(Data(name.utf8), context: "appStateSetting.pushName")
            default: break
            }
        }
        try await write("commitAppState") { db in
            try db.execute(sql: "INSERT OR REPLACE INTO appStateVersion(collection, version, hash) VALUES (?, ?, ?)",
                           arguments: [collection, Int64(state.version), state.hash])
            for mac in removed {
                try db.execute(sql: "DELETE FROM appStateMutationMAC WHERE collection = ? AND indexMAC = ?", arguments: [collection, mac])
            }
            for mac in added {
                try db.execute(sql: "INSERT OR REPLACE INTO appStateMutationMAC(collection, indexMAC, valueMAC) VALUES (?, ?, ?)",
                               arguments: [collection, mac.indexMAC, mac.valueMAC])
            }
            for change in changes {
                switch change {
                case .contact(let contact):
                    let key = contact.jid.description
                    try db.execute(sql: "INSERT OR REPLACE INTO appStateContact(jid, nameBlob) VALUES (?, ?)", arguments: [key, sealed[key]])
                case .contactRemoved(let jid):
                    try db.execute(sql: "DELETE FROM appStateContact WHERE jid = ?", arguments: [jid.nonAD.description])
                case .pushName:
                    try db.execute(sql: "INSERT OR REPLACE INTO appStateSetting(name, valueBlob) VALUES ('pushName', ?)",
                                   arguments: [sealed["setting.pushName"]])
                case .mute(let jid, let until):
                    try Self.upsertChat(db, jid, column: "mutedUntil", until.map { $0.timeIntervalSince1970 })
                case .pin(let jid, let on): try Self.upsertChat(db, jid, column: "pinned", on)
                case .archive(let jid, let on): try Self.upsertChat(db, jid, column: "archived", on)
                }
            }
        }
    }

    private static func upsertChat(_ db: Database, _ jid: JID, column: String, _ value: (any DatabaseValueConvertible)?) throws {
        try db.execute(sql: "INSERT INTO appStateChat(jid) VALUES (?) ON CONFLICT(jid) DO NOTHING", arguments: [jid.nonAD.description])
        try db.execute(sql: "UPDATE appStateChat SET \(column) = ? WHERE jid = ?", arguments: [value, jid.nonAD.description])
    }

    public func appStateContact(_ jid: JID) async throws -> AppStateContact? {
        let key = jid.nonAD.description
        let cipher = self.cipher
        return try await read("appStateContact") { db in
            guard let blob = try Data.fetchOne(db, sql: "SELECT nameBlob FROM appStateContact WHERE jid = ?", arguments: [key]) else { return nil }
            let names = try JSONDecoder().decode(Names.self, from: try cipher.open(blob, context: "appStateContact.\(key)"))
            return AppStateContact(jid: jid, fullName: names.full, firstName: names.first)
        }
    }

    public func appStateContacts() async throws -> [AppStateContact] {
        let cipher = self.cipher
        return try await read("appStateContacts") { db in
            try Row.fetchAll(db, sql: "SELECT jid, nameBlob FROM appStateContact ORDER BY jid").compactMap { row in
                let key: String = row["jid"]
                guard let jid = try? JID(parsing: key) else { return nil }
                let names = try JSONDecoder().decode(Names.self, from: try cipher.open(row["nameBlob"], context: "appStateContact.\(key)"))
                return AppStateContact(jid: jid, fullName: names.full, firstName: names.first)
            }
        }
    }

    public func appStateChatSettings(_ jid: JID) async throws -> AppStateChatSettings? {
        try await read("appStateChatSettings") { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT mutedUntil, pinned, archived FROM appStateChat WHERE jid = ?",
                                             arguments: [jid.nonAD.description]) else { return nil }
            let muted: Double? = row["mutedUntil"]
            return AppStateChatSettings(jid: jid, mutedUntil: muted.map { Date(timeIntervalSince1970: $0) },
                                        pinned: row["pinned"], archived: row["archived"])
        }
    }

    public func appStateOwnPushName() async throws -> String? {
        let cipher = self.cipher
        return try await read("appStateOwnPushName") { db in
            try Data.fetchOne(db, sql: "SELECT valueBlob FROM appStateSetting WHERE name = 'pushName'").map {
                String(decoding: try cipher.open($0, context: "appStateSetting.pushName"), as: UTF8.self)
            }
        }
    }
}
