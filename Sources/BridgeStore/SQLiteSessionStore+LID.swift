import Foundation
import GRDB
import WABinary
import WAClient
import WASignal

/// The PN↔LID table of `session.sqlite` (`lidMapping`, v4) and the PN → LID move of Signal
/// state. Session and sender-key blobs are sealed with their address in the context, so a
/// move opens and reseals each one, all in one transaction.
extension SQLiteSessionStore: LIDMappingStore, SignalAddressMigrating {
    public func storeLIDMappings(_ mappings: [LIDMapping]) async throws {
        let rows = mappings.map { ($0.lid.user, $0.pn.user) }
        guard !rows.isEmpty else { return }
        try await write("storeLIDMappings") { db in
            for (lid, pn) in rows {
                try db.execute(sql: "DELETE FROM lidMapping WHERE pnUser = ? AND lidUser <> ?", arguments: [pn, lid])
                try db.execute(sql: "INSERT OR REPLACE INTO lidMapping(lidUser, pnUser) VALUES (?, ?)", arguments: [lid, pn])
            }
        }
    }

    public func lid(forPN pn: JID) async throws -> JID? {
        let user = pn.user
        return try await read("lidForPN") { db in
            try String.fetchOne(db, sql: "SELECT lidUser FROM lidMapping WHERE pnUser = ?", arguments: [user])
        }.map { JID(user: $0, server: JID.lidServer) }
    }

    public func pn(forLID lid: JID) async throws -> JID? {
        let user = lid.user
        return try await read("pnForLID") { db in
            try String.fetchOne(db, sql: "SELECT pnUser FROM lidMapping WHERE lidUser = ?", arguments: [user])
        }.map { JID(user: $0, server: JID.userServer) }
    }

    /// One query per 500 numbers instead of one per number (a large group's members).
    public func lids(forPNs pns: [JID]) async throws -> [String: JID] {
        let users = Array(Set(pns.map(\.user)))
        guard !users.isEmpty else { return [:] }
        return try await read("lidsForPNs") { db in
            var out: [String: JID] = [:]
            for start in stride(from: 0, to: users.count, by: 500) {
                let chunk = Array(users[start..<min(start + 500, users.count)])
                let marks = Array(repeating: "?", count: chunk.count).joined(separator: ",")
                for row in try Row.fetchAll(db, sql: "SELECT pnUser, lidUser FROM lidMapping WHERE pnUser IN (\(marks))",
                                            arguments: StatementArguments(chunk)) {
                    out[row["pnUser"]] = JID(user: row["lidUser"], server: JID.lidServer)
                }
            }
            return out
        }
    }

    /// How many mappings are stored (tests, diagnostics).
    public func lidMappingCount() async throws -> Int {
        try await read("lidMappingCount") { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM lidMapping") ?? 0 }
    }

    @discardableResult
    public func migrateAddresses(fromName: String, toName: String) async throws -> Int {
        guard fromName != toName else { return 0 }
        let cipher = self.cipher
        // `name:device`, compared by prefix without LIKE (a LID name holds `_`, a LIKE wildcard).
        let prefix = fromName + ":"
        return try await write("migrateAddresses") { db in
            var moved = 0
            func renamed(_ address: String) -> String { toName + address.dropFirst(fromName.count) }
            let match = "substr(%@, 1, ?) = ?"
            let args: StatementArguments = [prefix.count, prefix]
            for row in try Row.fetchAll(db, sql: "SELECT address, recordBlob FROM session WHERE " + match.replacingOccurrences(of: "%@", with: "address"), arguments: args) {
                let old: String = row["address"]
                let new = renamed(old)
                let plain = try cipher.open(row["recordBlob"], context: "session.\(old)")
                let sealed = try cipher.seal(plain, context: "session.\(new)")
                try db.execute(sql: "INSERT OR IGNORE INTO session(address, recordBlob) VALUES (?, ?)", arguments: [new, sealed])
                moved += db.changesCount
            }
            try db.execute(sql: "DELETE FROM session WHERE " + match.replacingOccurrences(of: "%@", with: "address"), arguments: args)
            for row in try Row.fetchAll(db, sql: "SELECT address, publicKey FROM identity WHERE " + match.replacingOccurrences(of: "%@", with: "address"), arguments: args) {
                let old: String = row["address"]
                let key: Data = row["publicKey"]
                try db.execute(sql: "INSERT OR IGNORE INTO identity(address, publicKey) VALUES (?, ?)", arguments: [renamed(old), key])
                moved += db.changesCount
            }
            try db.execute(sql: "DELETE FROM identity WHERE " + match.replacingOccurrences(of: "%@", with: "address"), arguments: args)
            for row in try Row.fetchAll(db, sql: "SELECT groupID, sender, recordBlob FROM senderKey WHERE " + match.replacingOccurrences(of: "%@", with: "sender"), arguments: args) {
                let group: String = row["groupID"]
                let old: String = row["sender"]
                let new = renamed(old)
                let plain = try cipher.open(row["recordBlob"], context: "senderKey.\(group).\(old)")
                let sealed = try cipher.seal(plain, context: "senderKey.\(group).\(new)")
                try db.execute(sql: "INSERT OR IGNORE INTO senderKey(groupID, sender, recordBlob) VALUES (?, ?, ?)", arguments: [group, new, sealed])
                moved += db.changesCount
            }
            try db.execute(sql: "DELETE FROM senderKey WHERE " + match.replacingOccurrences(of: "%@", with: "sender"), arguments: args)
            return moved
        }
    }
}
