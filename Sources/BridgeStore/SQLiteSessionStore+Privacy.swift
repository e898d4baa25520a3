import Foundation
import GRDB
import WABinary
import WAClient

/// Privacy tokens and the NCT salt in `session.sqlite` (v5), sealed with the device's key
/// cipher (the address is in the context, so a blob cannot be moved to another peer's row).
extension SQLiteSessionStore: PrivacyTokenStore {
    public func storePrivacyTokens(_ tokens: [PrivacyToken]) async throws {
        guard !tokens.isEmpty else { return }
        let cipher = self.cipher
        let rows = try tokens.map { token -> (String, Data?, Int64, Int64?) in
            let user = token.user.nonAD.description
            let sealed = token.token.isEmpty ? nil : try cipher.seal(token.token, context: "privacyToken.\(user)")
            return (user, sealed, Int64(token.timestamp.timeIntervalSince1970), token.senderTimestamp.map { Int64($0.timeIntervalSince1970) })
        }
        try await write("storePrivacyTokens") { db in
            for (user, blob, timestamp, sender) in rows {
                try db.execute(sql: """
                    INSERT INTO privacyToken(user, tokenBlob, timestamp, senderTimestamp) VALUES (?, ?, ?, ?)
                    ON CONFLICT(user) DO UPDATE SET tokenBlob = excluded.tokenBlob, timestamp = excluded.timestamp,
                        senderTimestamp = COALESCE(excluded.senderTimestamp, privacyToken.senderTimestamp)
                    """, arguments: [user, blob, timestamp, sender])
            }
        }
    }

    public func privacyToken(for user: JID) async throws -> PrivacyToken? {
        let key = user.nonAD.description
        let cipher = self.cipher
        return try await read("privacyToken") { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT tokenBlob, timestamp, senderTimestamp FROM privacyToken WHERE user = ?",
                                             arguments: [key]) else { return nil }
            let blob: Data? = row["tokenBlob"]
            let token = try blob.map { try cipher.open($0, context: "privacyToken.\(key)") } ?? Data()
            let sender: Int64? = row["senderTimestamp"]
            return PrivacyToken(user: user, token: token, timestamp: Date(timeIntervalSince1970: TimeInterval(row["timestamp"] as Int64)),
                                senderTimestamp: sender.map { Date(timeIntervalSince1970: TimeInterval($0)) })
        }
    }

    public func setPrivacyTokenSenderTimestamp(_ timestamp: Date, for user: JID) async throws {
        let key = user.nonAD.description
        let seconds = Int64(timestamp.timeIntervalSince1970)
        try await write("setPrivacyTokenSenderTimestamp") { db in
            try db.execute(sql: """
                INSERT INTO privacyToken(user, tokenBlob, timestamp, senderTimestamp) VALUES (?, NULL, 0, ?)
                ON CONFLICT(user) DO UPDATE SET senderTimestamp = excluded.senderTimestamp
                """, arguments: [key, seconds])
        }
    }

    @discardableResult
    public func deleteExpiredPrivacyTokens(before cutoff: Date) async throws -> Int {
        let seconds = Int64(cutoff.timeIntervalSince1970)
        return try await write("deleteExpiredPrivacyTokens") { db in
            try db.execute(sql: "DELETE FROM privacyToken WHERE timestamp < ? AND COALESCE(senderTimestamp, 0) < ?",
                           arguments: [seconds, seconds])
            return db.changesCount
        }
    }

    public func nctSalt() async throws -> Data? {
        let cipher = self.cipher
        return try await read("nctSalt") { db in
            try Data.fetchOne(db, sql: "SELECT saltBlob FROM nctSalt WHERE id = 1").map { try cipher.open($0, context: "nctSalt") }
        }
    }

    public func storeNCTSalt(_ salt: Data?) async throws {
        let sealed = try salt.flatMap { $0.isEmpty ? nil : try cipher.seal($0, context: "nctSalt") }
        try await write("storeNCTSalt") { db in
            if let sealed {
                try db.execute(sql: "INSERT OR REPLACE INTO nctSalt(id, saltBlob) VALUES (1, ?)", arguments: [sealed])
            } else {
                try db.execute(sql: "DELETE FROM nctSalt")
            }
        }
    }
}
