import Foundation
import GRDB

/// An event in the registry's outbox: one that must outlive its device's
/// folder (`device.created`, `device.deleted`, and what a deleted device had
/// not published yet). `sequence` orders it across devices.
public struct RegistryOutboxEvent: Sendable, Equatable, Codable {
    public var sequence: Int64?
    public var eventID: String
    public var deviceID: String
    public var routingKey: String
    public var payload: Data
    public var createdAt: Date

    public init(sequence: Int64? = nil, eventID: String, deviceID: String, routingKey: String, payload: Data, createdAt: Date) {
        self.sequence = sequence
        self.eventID = eventID
        self.deviceID = deviceID
        self.routingKey = routingKey
        self.payload = payload
        self.createdAt = createdAt
    }
}

extension RegistryOutboxEvent: FetchableRecord, MutablePersistableRecord {
    public static var databaseTableName: String { "outbox" }
    public mutating func didInsert(_ inserted: InsertionSuccess) { sequence = inserted.rowID }
}

extension Registry {
    /// Appends events in order, in one transaction (durable when it returns);
    /// an event id already in this outbox is skipped.
    public func appendEvents(_ events: [RegistryOutboxEvent]) async throws(StoreError) {
        try StoreError.wrapping("appendRegistryEvents") {
            try queue.write { db in
                for e in events {
                    var row = e
                    row.sequence = nil
                    try row.insert(db, onConflict: .ignore)
                }
            }
        }
    }

    /// The oldest `limit` events, in append order.
    public func peekEvents(limit: Int = 100) async throws(StoreError) -> [RegistryOutboxEvent] {
        try StoreError.wrapping("peekRegistryEvents") {
            try queue.read { db in try RegistryOutboxEvent.order(Column("sequence")).limit(limit).fetchAll(db) }
        }
    }

    /// Removes confirmed events; returns how many went.
    @discardableResult
    public func deleteEvents(sequences: [Int64]) async throws(StoreError) -> Int {
        try StoreError.wrapping("deleteRegistryEvents") {
            try queue.write { db in try RegistryOutboxEvent.deleteAll(db, keys: sequences) }
        }
    }

    /// Events of `deviceID` still waiting here (its own outbox waits behind them).
    public func pendingEventCount(deviceID: DeviceID) async throws(StoreError) -> Int {
        try StoreError.wrapping("pendingRegistryEvents") {
            try queue.read { db in
                try RegistryOutboxEvent.filter(Column("deviceID") == deviceID.rawValue).fetchCount(db)
            }
        }
    }

    public func outboxCount() async throws(StoreError) -> Int {
        try StoreError.wrapping("registryOutboxCount") { try queue.read { db in try RegistryOutboxEvent.fetchCount(db) } }
    }
}
