import Foundation
import PostgresNIO
import WABinary
import WAClient
import WASignal

// LID mappings, the PN → LID move, privacy tokens and app state of the PostgreSQL key store:
// the same rows and sealing contexts as the SQLite store's v4–v6 tables.

extension PostgresKeyStore {
    // MARK: LIDMappingStore

    public func storeLIDMappings(_ mappings: [LIDMapping]) async throws {
        let rows = mappings.map { ($0.lid.user, $0.pn.user) }
        guard !rows.isEmpty else { return }
        let (id, logger) = (self.id, self.logger)
        try await write("storeLIDMappings") { c in
            for (lid, pn) in rows {
                // A number or a LID appears once: the newer mapping replaces rows naming either side.
                try await c.run("DELETE FROM lid_mapping WHERE device_id = \(id) AND (pn_user = \(pn) OR lid_user = \(lid))", logger)
                try await c.run("INSERT INTO lid_mapping (device_id, lid_user, pn_user) VALUES (\(id), \(lid), \(pn))", logger)
            }
        }
    }

    public func lid(forPN pn: JID) async throws -> JID? {
        let (id, logger, user) = (self.id, self.logger, pn.user)
        return try await read("lidForPN") { c in
            try await c.row("SELECT lid_user FROM lid_mapping WHERE device_id = \(id) AND pn_user = \(user)", logger)?.decode(String.self)
        }.map { JID(user: $0, server: JID.lidServer) }
    }

    public func pn(forLID lid: JID) async throws -> JID? {
        let (id, logger, user) = (self.id, self.logger, lid.user)
        return try await read("pnForLID") { c in
            try await c.row("SELECT pn_user FROM lid_mapping WHERE device_id = \(id) AND lid_user = \(user)", logger)?.decode(String.self)
        }.map { JID(user: $0, server: JID.userServer) }
    }

    /// One query for all the numbers (`= ANY($2)`), not one per number.
    public func lids(forPNs pns: [JID]) async throws -> [String: JID] {
        let users = Array(Set(pns.map(\.user)))
        guard !users.isEmpty else { return [:] }
        let (id, logger) = (self.id, self.logger)
        return try await read("lidsForPNs") { c in
            var out: [String: JID] = [:]
            for row in try await c.rows("SELECT pn_user, lid_user FROM lid_mapping WHERE device_id = \(id) AND pn_user = ANY(\(users))", logger) {
                let (pn, lid) = try row.decode((String, String).self)
                out[pn] = JID(user: lid, server: JID.lidServer)
            }
            return out
        }
    }

    public func lidMappingCount() async throws -> Int {
        let (id, logger) = (self.id, self.logger)
        return try await read("lidMappingCount") { c in
            Int(try await c.row("SELECT count(*) FROM lid_mapping WHERE device_id = \(id)", logger)?.decode(Int64.self) ?? 0)
        }
    }

    // MARK: SignalAddressMigrating

    @discardableResult
    public func migrateAddresses(fromName: String, toName: String) async throws -> Int {
        guard fromName != toName else { return 0 }
        let (id, cipher, logger) = (self.id, self.cipher, self.logger)
        // `name:device`, compared by prefix without LIKE (a LID name holds `_`, a LIKE wildcard).
        let prefix = fromName + ":"
        func renamed(_ address: String) -> String { toName + address.dropFirst(fromName.count) }
        return try await write("migrateAddresses") { c in
            var moved = 0
            for row in try await c.rows("""
                DELETE FROM session WHERE device_id = \(id) AND left(address, length(\(prefix))) = \(prefix) RETURNING address, record_blob
                """, logger) {
                let (old, blob) = try row.decode((String, Data).self)
                let new = renamed(old)
                let sealed = try cipher.seal(try cipher.open(blob, context: "session.\(old)"), context: "session.\(new)")
                moved += try await c.run("""
                    INSERT INTO session (device_id, address, record_blob) VALUES (\(id), \(new), \(sealed))
                    ON CONFLICT DO NOTHING RETURNING 1
                    """, logger)
            }
            for row in try await c.rows("""
                DELETE FROM identity WHERE device_id = \(id) AND left(address, length(\(prefix))) = \(prefix) RETURNING address, public_key
                """, logger) {
                let (old, key) = try row.decode((String, Data).self)
                moved += try await c.run("""
                    INSERT INTO identity (device_id, address, public_key) VALUES (\(id), \(renamed(old)), \(key))
                    ON CONFLICT DO NOTHING RETURNING 1
                    """, logger)
            }
            for row in try await c.rows("""
                DELETE FROM sender_key WHERE device_id = \(id) AND left(sender, length(\(prefix))) = \(prefix)
                RETURNING group_id, sender, record_blob
                """, logger) {
                let (group, old, blob) = try row.decode((String, String, Data).self)
                let new = renamed(old)
                let sealed = try cipher.seal(try cipher.open(blob, context: "senderKey.\(group).\(old)"), context: "senderKey.\(group).\(new)")
                moved += try await c.run("""
                    INSERT INTO sender_key (device_id, group_id, sender, record_blob) VALUES (\(id), \(group), \(new), \(sealed))
                    ON CONFLICT DO NOTHING RETURNING 1
                    """, logger)
            }
            return moved
        }
    }

    // MARK: PrivacyTokenStore

    public func storePrivacyTokens(_ tokens: [PrivacyToken]) async throws {
        guard !tokens.isEmpty else { return }
        let cipher = self.cipher
        let rows = try tokens.map { token -> (String, Data?, Int64, Int64?) in
            let user = token.user.nonAD.description
            let sealed = token.token.isEmpty ? nil : try cipher.seal(token.token, context: "privacyToken.\(user)")
            return (user, sealed, Int64(token.timestamp.timeIntervalSince1970), token.senderTimestamp.map { Int64($0.timeIntervalSince1970) })
        }
        let (id, logger) = (self.id, self.logger)
        try await write("storePrivacyTokens") { c in
            for (user, blob, timestamp, sender) in rows {
                try await c.run("""
                    INSERT INTO privacy_token (device_id, "user", token_blob, timestamp, sender_timestamp)
                    VALUES (\(id), \(user), \(blob), \(timestamp), \(sender))
                    ON CONFLICT (device_id, "user") DO UPDATE SET token_blob = excluded.token_blob, timestamp = excluded.timestamp,
                        sender_timestamp = COALESCE(excluded.sender_timestamp, privacy_token.sender_timestamp)
                    """, logger)
            }
        }
    }

    public func privacyToken(for user: JID) async throws -> PrivacyToken? {
        let key = user.nonAD.description
        let (id, cipher, logger) = (self.id, self.cipher, self.logger)
        return try await read("privacyToken") { c in
            guard let row = try await c.row("""
                SELECT token_blob, timestamp, sender_timestamp FROM privacy_token WHERE device_id = \(id) AND "user" = \(key)
                """, logger) else { return nil }
            let (blob, timestamp, sender) = try row.decode((Data?, Int64, Int64?).self)
            let token = try blob.map { try cipher.open($0, context: "privacyToken.\(key)") } ?? Data()
            return PrivacyToken(user: user, token: token, timestamp: Date(timeIntervalSince1970: TimeInterval(timestamp)),
                                senderTimestamp: sender.map { Date(timeIntervalSince1970: TimeInterval($0)) })
        }
    }

    public func setPrivacyTokenSenderTimestamp(_ timestamp: Date, for user: JID) async throws {
        let key = user.nonAD.description
        let seconds = Int64(timestamp.timeIntervalSince1970)
        let (id, logger) = (self.id, self.logger)
        try await write("setPrivacyTokenSenderTimestamp") { c in
            try await c.run("""
                INSERT INTO privacy_token (device_id, "user", token_blob, timestamp, sender_timestamp) VALUES (\(id), \(key), NULL, 0, \(seconds))
                ON CONFLICT (device_id, "user") DO UPDATE SET sender_timestamp = excluded.sender_timestamp
                """, logger)
        }
    }

    @discardableResult
    public func deleteExpiredPrivacyTokens(before cutoff: Date) async throws -> Int {
        let seconds = Int64(cutoff.timeIntervalSince1970)
        let (id, logger) = (self.id, self.logger)
        return try await write("deleteExpiredPrivacyTokens") { c in
            try await c.run("""
                DELETE FROM privacy_token WHERE device_id = \(id) AND timestamp < \(seconds) AND COALESCE(sender_timestamp, 0) < \(seconds)
                RETURNING 1
                """, logger)
        }
    }

    public func nctSalt() async throws -> Data? {
        let (id, cipher, logger) = (self.id, self.cipher, self.logger)
        return try await read("nctSalt") { c in
            let blob = try await c.row("SELECT salt_blob FROM nct_salt WHERE device_id = \(id)", logger)?.decode(Data.self)
            return try blob.map { try cipher.open($0, context: "nctSalt") }
        }
    }

    public func storeNCTSalt(_ salt: Data?) async throws {
        let sealed = try salt.flatMap { $0.isEmpty ? nil : try cipher.seal($0, context: "nctSalt") }
        let (id, logger) = (self.id, self.logger)
        try await write("storeNCTSalt") { c in
            if let sealed {
                try await c.run("""
                    INSERT INTO nct_salt (device_id, salt_blob) VALUES (\(id), \(sealed))
                    ON CONFLICT (device_id) DO UPDATE SET salt_blob = excluded.salt_blob
                    """, logger)
            } else {
                try await c.run("DELETE FROM nct_salt WHERE device_id = \(id)", logger)
            }
        }
    }

    // MARK: AppStateStore

    private struct Names: Codable { var full: String; var first: String }

    public func storeAppStateSyncKeys(_ keys: [AppStateSyncKey]) async throws {
        guard !keys.isEmpty else { return }
        let cipher = self.cipher
        let rows = try keys.map { key in
            (key.id, try cipher.seal(key.data, context: "appStateSyncKey.\(key.id.base64EncodedString())"), key.fingerprint, key.timestamp)
        }
        let (id, logger) = (self.id, self.logger)
        try await write("storeAppStateSyncKeys") { c in
            for (keyID, blob, fingerprint, timestamp) in rows {
                try await c.run("""
                    INSERT INTO app_state_sync_key (device_id, key_id, key_blob, fingerprint, timestamp)
                    VALUES (\(id), \(keyID), \(blob), \(fingerprint), \(timestamp))
                    ON CONFLICT (device_id, key_id) DO UPDATE SET key_blob = excluded.key_blob, fingerprint = excluded.fingerprint,
                        timestamp = excluded.timestamp
                    """, logger)
            }
        }
    }

    public func appStateSyncKey(id keyID: Data) async throws -> AppStateSyncKey? {
        let (id, cipher, logger) = (self.id, self.cipher, self.logger)
        return try await read("appStateSyncKey") { c in
            guard let row = try await c.row("""
                SELECT key_blob, fingerprint, timestamp FROM app_state_sync_key WHERE device_id = \(id) AND key_id = \(keyID)
                """, logger) else { return nil }
            let (blob, fingerprint, timestamp) = try row.decode((Data, Data, Int64).self)
            let data = try cipher.open(blob, context: "appStateSyncKey.\(keyID.base64EncodedString())")
            return AppStateSyncKey(id: keyID, data: data, fingerprint: fingerprint, timestamp: timestamp)
        }
    }

    public func appStateVersion(_ collection: String) async throws -> AppStateHashState {
        let (id, logger) = (self.id, self.logger)
        return try await read("appStateVersion") { c in
            guard let row = try await c.row("""
                SELECT version, hash FROM app_state_version WHERE device_id = \(id) AND collection = \(collection)
                """, logger) else { return AppStateHashState() }
            let (version, hash) = try row.decode((Int64, Data).self)
            return AppStateHashState(version: UInt64(version), hash: hash)
        }
    }

    public func appStateValueMAC(_ collection: String, indexMAC: Data) async throws -> Data? {
        let (id, logger) = (self.id, self.logger)
        return try await read("appStateValueMAC") { c in
            try await c.row("""
                SELECT value_mac FROM app_state_mutation_mac WHERE device_id = \(id) AND collection = \(collection) AND index_mac = \(indexMAC)
                """, logger)?.decode(Data.self)
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
        let (id, logger) = (self.id, self.logger)
        let version = Int64(state.version), hash = state.hash
        try await write("commitAppState") { c in
            try await c.run("""
                INSERT INTO app_state_version (device_id, collection, version, hash) VALUES (\(id), \(collection), \(version), \(hash))
                ON CONFLICT (device_id, collection) DO UPDATE SET version = excluded.version, hash = excluded.hash
                """, logger)
            for mac in removed {
                try await c.run("""
                    DELETE FROM app_state_mutation_mac WHERE device_id = \(id) AND collection = \(collection) AND index_mac = \(mac)
                    """, logger)
            }
            for mac in added {
                try await c.run("""
                    INSERT INTO app_state_mutation_mac (device_id, collection, index_mac, value_mac)
                    VALUES (\(id), \(collection), \(mac.indexMAC), \(mac.valueMAC))
                    ON CONFLICT (device_id, collection, index_mac) DO UPDATE SET value_mac = excluded.value_mac
                    """, logger)
            }
            for change in changes {
                switch change {
                case .contact(let contact):
                    let key = contact.jid.description
                    try await c.run("""
                        INSERT INTO app_state_contact (device_id, jid, name_blob) VALUES (\(id), \(key), \(sealed[key]))
                        ON CONFLICT (device_id, jid) DO UPDATE SET name_blob = excluded.name_blob
                        """, logger)
                case .contactRemoved(let jid):
                    try await c.run("DELETE FROM app_state_contact WHERE device_id = \(id) AND jid = \(jid.nonAD.description)", logger)
                case .pushName:
                    try await c.run("""
                        INSERT INTO app_state_setting (device_id, name, value_blob) VALUES (\(id), 'pushName', \(sealed["setting.pushName"]))
                        ON CONFLICT (device_id, name) DO UPDATE SET value_blob = excluded.value_blob
                        """, logger)
                case .mute(let jid, let until):
                    let muted = until.map { $0.timeIntervalSince1970 }
                    try await c.run("""
                        INSERT INTO app_state_chat (device_id, jid, muted_until) VALUES (\(id), \(jid.nonAD.description), \(muted))
                        ON CONFLICT (device_id, jid) DO UPDATE SET muted_until = excluded.muted_until
                        """, logger)
                case .pin(let jid, let on):
                    try await c.run("""
                        INSERT INTO app_state_chat (device_id, jid, pinned) VALUES (\(id), \(jid.nonAD.description), \(on))
                        ON CONFLICT (device_id, jid) DO UPDATE SET pinned = excluded.pinned
                        """, logger)
                case .archive(let jid, let on):
                    try await c.run("""
                        INSERT INTO app_state_chat (device_id, jid, archived) VALUES (\(id), \(jid.nonAD.description), \(on))
                        ON CONFLICT (device_id, jid) DO UPDATE SET archived = excluded.archived
                        """, logger)
                }
            }
        }
    }

    public func appStateContact(_ jid: JID) async throws -> AppStateContact? {
        let key = jid.nonAD.description
        let (id, cipher, logger) = (self.id, self.cipher, self.logger)
        return try await read("appStateContact") { c in
            guard let blob = try await c.row("SELECT name_blob FROM app_state_contact WHERE device_id = \(id) AND jid = \(key)", logger)?
                .decode(Data.self) else { return nil }
            let names = try JSONDecoder().decode(Names.self, from: try cipher.open(blob, context: "appStateContact.\(key)"))
            return AppStateContact(jid: jid, fullName: names.full, firstName: names.first)
        }
    }

    public func appStateContacts() async throws -> [AppStateContact] {
        let (id, cipher, logger) = (self.id, self.cipher, self.logger)
        return try await read("appStateContacts") { c in
            // COLLATE "C": the byte order SQLite's ORDER BY uses.
            try await c.rows("SELECT jid, name_blob FROM app_state_contact WHERE device_id = \(id) ORDER BY jid COLLATE \"C\"", logger)
                .compactMap { row in
                    let (key, blob) = try row.decode((String, Data).self)
                    guard let jid = try? JID(parsing: key) else { return nil }
                    let names = try JSONDecoder().decode(Names.self, from: try cipher.open(blob, context: "appStateContact.\(key)"))
                    return AppStateContact(jid: jid, fullName: names.full, firstName: names.first)
                }
        }
    }

    public func appStateChatSettings(_ jid: JID) async throws -> AppStateChatSettings? {
        let (id, logger) = (self.id, self.logger)
        return try await read("appStateChatSettings") { c in
            guard let row = try await c.row("""
                SELECT muted_until, pinned, archived FROM app_state_chat WHERE device_id = \(id) AND jid = \(jid.nonAD.description)
                """, logger) else { return nil }
            let (muted, pinned, archived) = try row.decode((Double?, Bool, Bool).self)
            return AppStateChatSettings(jid: jid, mutedUntil: muted.map { Date(timeIntervalSince1970: $0) }, pinned: pinned, archived: archived)
        }
    }

    public func appStateOwnPushName() async throws -> String? {
        let (id, cipher, logger) = (self.id, self.cipher, self.logger)
        return try await read("appStateOwnPushName") { c in
            let blob = try await c.row("SELECT value_blob FROM app_state_setting WHERE device_id = \(id) AND name = 'pushName'", logger)?
                .decode(Data.self)
            return try blob.map { String(decoding: try cipher.open($0, context: "appStateSetting.pushName"), as: UTF8.self) }
        }
    }
}
