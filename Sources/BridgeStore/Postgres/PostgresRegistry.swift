import Foundation
import Logging
import PostgresNIO

/// The registry in PostgreSQL: the `device` table and the `registry_outbox`.
final class PostgresRegistry: RegistryBackend {
    let database: PostgresDatabase
    private var logger: Logger { database.logger }

    init(database: PostgresDatabase) { self.database = database }

    private static let columns = "id, jid, lid, push_name, state, created_at, updated_at, settings"

    private static func device(from row: PostgresRow) throws -> RegisteredDevice {
        let (id, jid, lid, pushName, state, createdAt, updatedAt, settings) =
            try row.decode((String, String?, String?, String, String, Date, Date, String).self)
        guard let deviceID = try? DeviceID(id), let state = DeviceState(rawValue: state) else {
            throw StoreError(.corrupt, "a device row does not parse")
        }
        return RegisteredDevice(id: deviceID, jid: jid, lid: lid, pushName: pushName, state: state,
                                createdAt: createdAt, updatedAt: updatedAt, settings: settings)
    }

    func createDevice(_ id: DeviceID, settings: String, lease: (owner: String, ttl: TimeInterval)?,
                      now: Date) async throws(StoreError) -> RegisteredDevice {
        let settings = try Registry.validatedSettings(settings)
        let device = RegisteredDevice(id: id, createdAt: now, updatedAt: now, settings: settings)
        let logger = self.logger
        do {
            try await database.client.withTransaction(logger: logger) { c in
                try await c.run("""
                    INSERT INTO device (id, push_name, state, created_at, updated_at, settings)
                    VALUES (\(id.rawValue), \(device.pushName), \(device.state.rawValue), \(now), \(now), \(settings))
                    """, logger)
                try await c.run("INSERT INTO device_fence (device_id, fence) VALUES (\(id.rawValue), 0)", logger)
                if let lease {
                    try await c.run("""
                        INSERT INTO lease (device_id, owner, generation, expires_at)
                        VALUES (\(id.rawValue), \(lease.owner), 1, \(unescaped: PostgresLeaseStore.clock) + \(lease.ttl))
                        """, logger)
                }
            }
        } catch {
            if PostgresDatabase.isUniqueViolation(error) { throw StoreError(.deviceExists, "device \(id) already exists") }
            throw PostgresDatabase.storeError("createDevice", error)
        }
        return device
    }

    func device(_ id: DeviceID) async throws(StoreError) -> RegisteredDevice {
        let logger = self.logger
        let found = try await database.read("device") { c in
            try await c.row("SELECT \(unescaped: Self.columns) FROM device WHERE id = \(id.rawValue)", logger).map(Self.device)
        }
        guard let found else { throw StoreError(.notFound, "no device \(id)") }
        return found
    }

    func listDevices() async throws(StoreError) -> [RegisteredDevice] {
        let logger = self.logger
        return try await database.read("listDevices") { c in
            try await c.rows("SELECT \(unescaped: Self.columns) FROM device ORDER BY created_at, created_seq", logger).map(Self.device)
        }
    }

    func deviceCount() async throws(StoreError) -> Int {
        let logger = self.logger
        return try await database.read("deviceCount") { c in
            Int(try await c.row("SELECT count(*) FROM device", logger)?.decode(Int64.self) ?? 0)
        }
    }

    @discardableResult
    func updateState(_ id: DeviceID, to state: DeviceState, now: Date = Date()) async throws(StoreError) -> RegisteredDevice {
        try await update(id, "updateState", "UPDATE device SET state = \(state.rawValue), updated_at = \(now) WHERE id = \(id.rawValue)")
    }

    @discardableResult
    func setIdentity(_ id: DeviceID, jid: String?, lid: String?, pushName: String?, now: Date = Date()) async throws(StoreError) -> RegisteredDevice {
        try await update(id, "setIdentity", """
            UPDATE device SET jid = \(jid), lid = \(lid), push_name = COALESCE(\(pushName), push_name), updated_at = \(now)
            WHERE id = \(id.rawValue)
            """)
    }

    @discardableResult
    func updateSettings(_ id: DeviceID, _ settings: String, now: Date = Date()) async throws(StoreError) -> RegisteredDevice {
        let settings = try Registry.validatedSettings(settings)
        return try await update(id, "updateSettings",
                                "UPDATE device SET settings = \(settings), updated_at = \(now) WHERE id = \(id.rawValue)")
    }

    private func update(_ id: DeviceID, _ what: String, _ statement: PostgresQuery) async throws(StoreError) -> RegisteredDevice {
        let logger = self.logger
        var query = statement
        query.sql += " RETURNING \(Self.columns)"
        let updated = try await database.read(what) { c in try await c.row(query, logger).map(Self.device) }
        guard let updated else { throw StoreError(.notFound, "no device \(id)") }
        return updated
    }

    func deleteDevice(_ id: DeviceID) async throws(StoreError) {
        let logger = self.logger
        // Every per-device row references `device(id)` ON DELETE CASCADE: they go with it.
        let deleted = try await database.write("deleteDevice") { c in
            try await c.run("DELETE FROM device WHERE id = \(id.rawValue) RETURNING 1", logger)
        }
        guard deleted > 0 else { throw StoreError(.notFound, "no device \(id)") }
    }

    // MARK: Registry outbox

    func appendEvents(_ events: [RegistryOutboxEvent]) async throws(StoreError) {
        guard !events.isEmpty else { return }
        let logger = self.logger
        try await database.write("appendRegistryEvents") { c in
            for e in events {
                try await c.run("""
                    INSERT INTO registry_outbox (event_id, device_id, routing_key, payload, created_at)
                    VALUES (\(e.eventID), \(e.deviceID), \(e.routingKey), \(e.payload), \(e.createdAt))
                    ON CONFLICT (event_id) DO NOTHING
                    """, logger)
            }
        }
    }

    func peekEvents(limit: Int = 100) async throws(StoreError) -> [RegistryOutboxEvent] {
        let logger = self.logger
        let limit = Int64(clamping: max(0, limit))
        return try await database.read("peekRegistryEvents") { c in
            try await c.rows("""
                SELECT sequence, event_id, device_id, routing_key, payload, created_at FROM registry_outbox
                ORDER BY sequence LIMIT \(limit)
                """, logger).map { row in
                let (sequence, eventID, deviceID, routingKey, payload, createdAt) = try row.decode((Int64, String, String, String, Data, Date).self)
                return RegistryOutboxEvent(sequence: sequence, eventID: eventID, deviceID: deviceID, routingKey: routingKey,
                                           payload: payload, createdAt: createdAt)
            }
        }
    }

    @discardableResult
    func deleteEvents(sequences: [Int64]) async throws(StoreError) -> Int {
        guard !sequences.isEmpty else { return 0 }
        let logger = self.logger
        return try await database.write("deleteRegistryEvents") { c in
            try await c.run("DELETE FROM registry_outbox WHERE sequence = ANY(\(sequences)) RETURNING 1", logger)
        }
    }

    func pendingEventCount(deviceID: DeviceID) async throws(StoreError) -> Int {
        let logger = self.logger
        return try await database.read("pendingRegistryEvents") { c in
            Int(try await c.row("SELECT count(*) FROM registry_outbox WHERE device_id = \(deviceID.rawValue)", logger)?.decode(Int64.self) ?? 0)
        }
    }

    func outboxCount() async throws(StoreError) -> Int {
        let logger = self.logger
        return try await database.read("registryOutboxCount") { c in
            Int(try await c.row("SELECT count(*) FROM registry_outbox", logger)?.decode(Int64.self) ?? 0)
        }
    }

    // MARK: Fencing

    /// fence = max(fence, generation). Waits for key writes holding the fence row `FOR SHARE`.
    func raiseFence(_ id: DeviceID, to generation: Int64) async throws(StoreError) {
        let logger = self.logger
        let changed = try await database.leaseWrite("raiseFence") { c in
            try await c.run("""
                INSERT INTO device_fence (device_id, fence) SELECT id, \(generation) FROM device WHERE id = \(id.rawValue)
                ON CONFLICT (device_id) DO UPDATE SET fence = GREATEST(device_fence.fence, excluded.fence)
                RETURNING 1
                """, logger)
        }
        guard changed > 0 else { throw StoreError(.notFound, "no device \(id)") }
    }

    /// The device's fence now (0 until an owner raised it).
    func fence(_ id: DeviceID) async throws(StoreError) -> Int64 {
        let logger = self.logger
        let fence = try await database.read("fence") { c in
            try await c.row("SELECT fence FROM device_fence WHERE device_id = \(id.rawValue)", logger)?.decode(Int64.self)
        }
        guard let fence else { throw StoreError(.notFound, "no device \(id)") }
        return fence
    }
}
