import Foundation
import GRDB

/// Owns `registry.sqlite`: the list of device slots. Every write has a name.
/// The registry holds no key material; per-device data lives in the device's folder.
public final class Registry: RegistryBackend {
    let queue: DatabaseQueue

    init(queue: DatabaseQueue) { self.queue = queue }

    /// Inserts a new slot; `store.device_exists` when the ID is taken.
    /// `lease`: the creating worker holds the new device from the first instant (generation 1),
    /// so no other worker's round can take it between the insert and its login.
    func createDevice(_ id: DeviceID, settings: String, lease: (owner: String, ttl: TimeInterval)?,
                      now: Date) async throws(StoreError) -> RegisteredDevice {
        let settings = try Self.validatedSettings(settings)
        let device = RegisteredDevice(id: id, createdAt: now, updatedAt: now, settings: settings)
        do {
            try await queue.write { db in
                try device.insert(db)
                if let lease {
                    try db.execute(sql: "INSERT INTO lease(deviceID, owner, generation, expiresAt) VALUES (?, ?, 1, ?)",
                                   arguments: [id.rawValue, lease.owner, Date().timeIntervalSince1970 + lease.ttl])
                }
            }
        } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
            throw StoreError(.deviceExists, "device \(id) already exists")
        } catch {
            throw StoreError(.database, "createDevice: \(error)")
        }
        return device
    }

    public func device(_ id: DeviceID) async throws(StoreError) -> RegisteredDevice {
        let found = try StoreError.wrapping("device") {
            // A cached statement: this lookup runs several times per command and event, and
            // building the query each time was a visible share of the worker's CPU.
            try queue.read { db in
                try RegisteredDevice.fetchOne(db.cachedStatement(sql: "SELECT * FROM device WHERE id = ?"), arguments: [id.rawValue])
            }
        }
        guard let found else { throw StoreError(.notFound, "no device \(id)") }
        return found
    }

    /// Every slot, in creation order.
    public func listDevices() async throws(StoreError) -> [RegisteredDevice] {
        try StoreError.wrapping("listDevices") {
            try queue.read { db in
                try RegisteredDevice.order(Column("createdAt"), Column.rowID).fetchAll(db)
            }
        }
    }

    public func deviceCount() async throws(StoreError) -> Int {
        try StoreError.wrapping("deviceCount") { try queue.read { db in try RegisteredDevice.fetchCount(db) } }
    }

    /// Records a state transition.
    @discardableResult
    public func updateState(_ id: DeviceID, to state: DeviceState, now: Date = Date()) async throws(StoreError) -> RegisteredDevice {
        try await update(id, "updateState") { $0.state = state; $0.updatedAt = now }
    }

    /// Records who the device is after login (or clears it with nils after logout).
    @discardableResult
    public func setIdentity(_ id: DeviceID, jid: String?, lid: String?, pushName: String?, now: Date = Date()) async throws(StoreError) -> RegisteredDevice {
        try await update(id, "setIdentity") {
            $0.jid = jid
            $0.lid = lid
            if let pushName { $0.pushName = pushName }
            $0.updatedAt = now
        }
    }

    /// Replaces the settings (a JSON object).
    @discardableResult
    public func updateSettings(_ id: DeviceID, _ settings: String, now: Date = Date()) async throws(StoreError) -> RegisteredDevice {
        let settings = try Self.validatedSettings(settings)
        return try await update(id, "updateSettings") { $0.settings = settings; $0.updatedAt = now }
    }

    /// Removes the row; `store.not_found` when there was none.
    func deleteDevice(_ id: DeviceID) async throws(StoreError) {
        let deleted = try StoreError.wrapping("deleteDevice") {
            try queue.write { db in try RegisteredDevice.deleteOne(db, key: id.rawValue) }
        }
        guard deleted else { throw StoreError(.notFound, "no device \(id)") }
    }

    private func update(
        _ id: DeviceID, _ what: String, _ change: @escaping @Sendable (inout RegisteredDevice) -> Void
    ) async throws(StoreError) -> RegisteredDevice {
        let updated = try StoreError.wrapping(what) {
            try queue.write { db -> RegisteredDevice? in
                guard var device = try RegisteredDevice.fetchOne(db, key: id.rawValue) else { return nil }
                change(&device)
                try device.update(db)
                return device
            }
        }
        guard let updated else { throw StoreError(.notFound, "no device \(id)") }
        return updated
    }

    static func validatedSettings(_ text: String) throws(StoreError) -> String {
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)), object is [String: Any] else {
            throw StoreError(.invalidSettings, "settings must be a JSON object")
        }
        return text
    }
}
