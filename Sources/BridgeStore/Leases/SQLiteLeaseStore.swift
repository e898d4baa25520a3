import Foundation
import GRDB

/// Leases in `registry.sqlite`, for workers that share one data folder on one host (SQLite
/// locks the file between processes). Every call is an IMMEDIATE transaction, so the read of
/// a lease and its change are one step for all processes; the clock is the host's.
public final class SQLiteLeaseStore: LeaseStoring {
    private let queue: DatabaseQueue

    init(queue: DatabaseQueue) { self.queue = queue }

    private func transaction<T: Sendable>(_ what: String, _ body: @escaping @Sendable (Database) throws -> T) async throws(StoreError) -> T {
        let queue = self.queue
        return try StoreError.wrapping(what) {
            try queue.writeWithoutTransaction { db in
                var result: T?
                try db.inTransaction(.immediate) {
                    result = try body(db)
                    return .commit
                }
                return result!
            }
        }
    }

    public func acquire(_ device: DeviceID, owner: String, ttl: TimeInterval) async throws(StoreError) -> DeviceLease? {
        try await transaction("acquire") { db -> DeviceLease? in
            let now = Date().timeIntervalSince1970
            let expires = now + ttl
            guard try Int.fetchOne(db, sql: "SELECT 1 FROM device WHERE id = ?", arguments: [device.rawValue]) != nil else {
                throw StoreError(.notFound, "no device \(device)")
            }
            let row = try Row.fetchOne(db, sql: "SELECT owner, generation, expiresAt FROM lease WHERE deviceID = ?",
                                       arguments: [device.rawValue])
            let generation: Int64
            if let row {
                let holder: String = row["owner"], current: Int64 = row["generation"], until: Double = row["expiresAt"]
                if until > now {
                    guard holder == owner else { return nil }
                    generation = current
                } else {
                    generation = current + 1
                    try db.execute(sql: "UPDATE device SET state = ?, updatedAt = ? WHERE id = ? AND state IN (?, ?, ?)",
                                   arguments: [DeviceState.disconnected.rawValue, Date(), device.rawValue,
                                               DeviceState.connecting.rawValue, DeviceState.connected.rawValue,
                                               DeviceState.reconnecting.rawValue])
                }
                try db.execute(sql: "UPDATE lease SET owner = ?, generation = ?, expiresAt = ? WHERE deviceID = ?",
                               arguments: [owner, generation, expires, device.rawValue])
            } else {
                generation = 1
                try db.execute(sql: "INSERT INTO lease(deviceID, owner, generation, expiresAt) VALUES (?, ?, ?, ?)",
                               arguments: [device.rawValue, owner, generation, expires])
            }
            return DeviceLease(device: device, owner: owner, generation: generation,
                               expiresAt: Date(timeIntervalSince1970: expires))
        }
    }

    public func renew(owner: String, ttl: TimeInterval) async throws(StoreError) -> [DeviceLease] {
        try await transaction("renew") { db -> [DeviceLease] in
            let now = Date().timeIntervalSince1970
            try db.execute(sql: "UPDATE lease SET expiresAt = ? WHERE owner = ? AND expiresAt > ?",
                           arguments: [now + ttl, owner, now])
            return try Self.rows(db, sql: "SELECT * FROM lease WHERE owner = ? AND expiresAt > ?", arguments: [owner, now])
        }
    }

    public func release(_ lease: DeviceLease) async throws(StoreError) {
        try await transaction("release") { db in
            try db.execute(sql: "UPDATE lease SET expiresAt = 0 WHERE deviceID = ? AND owner = ? AND generation = ?",
                           arguments: [lease.device.rawValue, lease.owner, lease.generation])
        }
    }

    public func leases() async throws(StoreError) -> [DeviceLease] {
        let queue = self.queue
        return try StoreError.wrapping("leases") {
            try queue.read { db in try Self.rows(db, sql: "SELECT * FROM lease ORDER BY deviceID", arguments: []) }
        }
    }

    public func heartbeat(worker: String, ttl: TimeInterval, draining: Bool) async throws(StoreError) {
        try await transaction("heartbeat") { db in
            try db.execute(sql: """
                INSERT INTO worker(id, expiresAt, draining) VALUES (?, ?, ?)
                ON CONFLICT(id) DO UPDATE SET expiresAt = excluded.expiresAt, draining = excluded.draining
                """, arguments: [worker, Date().timeIntervalSince1970 + ttl, draining])
        }
    }

    public func liveWorkers(forgetAfter: TimeInterval) async throws(StoreError) -> [WorkerRecord] {
        try await transaction("liveWorkers") { db -> [WorkerRecord] in
            let now = Date().timeIntervalSince1970
            try db.execute(sql: "DELETE FROM worker WHERE expiresAt < ?", arguments: [now - forgetAfter])
            return try Row.fetchAll(db, sql: "SELECT * FROM worker WHERE expiresAt > ? ORDER BY id", arguments: [now]).map {
                WorkerRecord(id: $0["id"], expiresAt: Date(timeIntervalSince1970: $0["expiresAt"]), draining: $0["draining"])
            }
        }
    }

    public func now() async throws(StoreError) -> Date { Date() }

    /// One writer per file, and each call holds a thread while it waits for the file: one at a time
    /// (measured: 8 at once made a start with 10,000 devices slower).
    public var parallelAcquires: Int { 1 }

    private static func rows(_ db: Database, sql: String, arguments: StatementArguments) throws -> [DeviceLease] {
        try Row.fetchAll(db, sql: sql, arguments: arguments).compactMap { row in
            guard let id = try? DeviceID(row["deviceID"] as String) else { return nil }
            return DeviceLease(device: id, owner: row["owner"], generation: row["generation"],
                               expiresAt: Date(timeIntervalSince1970: row["expiresAt"]))
        }
    }
}
