import Foundation
import Logging
import PostgresNIO

/// Leases and heartbeats in PostgreSQL, for workers on any number of hosts. Each call is one
/// transaction; `acquire` locks the lease row (`FOR UPDATE`, the row made first if missing),
/// so two workers asking at once get one lease between them. Times come from the database's
/// clock (`clock_timestamp()`), never a worker's.
public final class PostgresLeaseStore: LeaseStoring {
    let database: PostgresDatabase
    private var logger: Logger { database.logger }

    init(database: PostgresDatabase) { self.database = database }

    static let clock = "extract(epoch from clock_timestamp())::float8"

    /// Each acquire is a few round trips on its own pooled connection: 8 at once took a start with
    /// 10,000 devices from 36 to about 50 devices a second.
    public var parallelAcquires: Int { 8 }

    public func acquire(_ device: DeviceID, owner: String, ttl: TimeInterval) async throws(StoreError) -> DeviceLease? {
        let logger = self.logger
        let id = device.rawValue
        return try await database.leaseWrite("acquire") { c -> DeviceLease? in
            guard try await c.row("SELECT 1 FROM device WHERE id = \(id)", logger) != nil else {
                throw StoreError(.notFound, "no device \(device)")
            }
            // An expired placeholder (generation 0) when there is no row: the first owner gets 1.
            try await c.run("""
                INSERT INTO lease (device_id, owner, generation, expires_at) VALUES (\(id), '', 0, 0) ON CONFLICT DO NOTHING
                """, logger)
            guard let row = try await c.row("""
                SELECT owner, generation, expires_at, \(unescaped: Self.clock) FROM lease WHERE device_id = \(id) FOR UPDATE
                """, logger) else { throw StoreError(.database, "acquire: the lease row vanished") }
            let (holder, current, until, now) = try row.decode((String, Int64, Double, Double).self)
            let generation: Int64
            if until > now {
                guard holder == owner else { return nil }
                generation = current
            } else {
                generation = current + 1
                // SKIP LOCKED: a row locked by a stopped worker keeps its state rather than stop
                // this round (the new owner records its own state once it runs the device).
                let linked = [DeviceState.connecting, .connected, .reconnecting].map(\.rawValue)
                try await c.run("""
                    UPDATE device SET state = \(DeviceState.disconnected.rawValue), updated_at = clock_timestamp()
                    WHERE id = (SELECT id FROM device WHERE id = \(id) AND state = ANY(\(linked)) FOR UPDATE SKIP LOCKED)
                    """, logger)
            }
            let expires = now + ttl
            try await c.run("""
                UPDATE lease SET owner = \(owner), generation = \(generation), expires_at = \(expires) WHERE device_id = \(id)
                """, logger)
            return DeviceLease(device: device, owner: owner, generation: generation, expiresAt: Date(timeIntervalSince1970: expires))
        }
    }

    public func renew(owner: String, ttl: TimeInterval) async throws(StoreError) -> [DeviceLease] {
        let logger = self.logger
        return try await database.leaseWrite("renew") { c in
            try await c.rows("""
                UPDATE lease SET expires_at = \(unescaped: Self.clock) + \(ttl)
                WHERE owner = \(owner) AND expires_at > \(unescaped: Self.clock)
                RETURNING device_id, owner, generation, expires_at
                """, logger).compactMap(Self.lease).sorted { $0.device.rawValue < $1.device.rawValue }
        }
    }

    public func release(_ lease: DeviceLease) async throws(StoreError) {
        let logger = self.logger
        try await database.leaseWrite("release") { c in
            try await c.run("""
                UPDATE lease SET expires_at = 0
                WHERE device_id = \(lease.device.rawValue) AND owner = \(lease.owner) AND generation = \(lease.generation)
                """, logger)
        }
    }

    public func leases() async throws(StoreError) -> [DeviceLease] {
        let logger = self.logger
        return try await database.read("leases") { c in
            try await c.rows("SELECT device_id, owner, generation, expires_at FROM lease ORDER BY device_id COLLATE \"C\"", logger)
                .compactMap(Self.lease)
        }
    }

    public func heartbeat(worker: String, ttl: TimeInterval, draining: Bool) async throws(StoreError) {
        let logger = self.logger
        try await database.leaseWrite("heartbeat") { c in
            try await c.run("""
                INSERT INTO worker (id, expires_at, draining) VALUES (\(worker), \(unescaped: Self.clock) + \(ttl), \(draining))
                ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at, draining = excluded.draining
                """, logger)
        }
    }

    public func liveWorkers(forgetAfter: TimeInterval) async throws(StoreError) -> [WorkerRecord] {
        let logger = self.logger
        return try await database.leaseWrite("liveWorkers") { c in
            try await c.run("DELETE FROM worker WHERE expires_at < \(unescaped: Self.clock) - \(forgetAfter)", logger)
            return try await c.rows("""
                SELECT id, expires_at, draining FROM worker WHERE expires_at > \(unescaped: Self.clock) ORDER BY id COLLATE "C"
                """, logger).map { row in
                let (id, expires, draining) = try row.decode((String, Double, Bool).self)
                return WorkerRecord(id: id, expiresAt: Date(timeIntervalSince1970: expires), draining: draining)
            }
        }
    }

    public func now() async throws(StoreError) -> Date {
        let logger = self.logger
        return try await database.read("now") { c in
            Date(timeIntervalSince1970: try await c.row("SELECT \(unescaped: Self.clock)", logger)?.decode(Double.self) ?? 0)
        }
    }

    private static func lease(_ row: PostgresRow) throws -> DeviceLease? {
        let (id, owner, generation, expires) = try row.decode((String, String, Int64, Double).self)
        guard let device = try? DeviceID(id) else { return nil }
        return DeviceLease(device: device, owner: owner, generation: generation, expiresAt: Date(timeIntervalSince1970: expires))
    }
}
