import Foundation
import GRDB

/// A row of the registry: one device slot.
public struct RegisteredDevice: Sendable, Equatable, Codable {
    public var id: DeviceID
    /// Assigned at login (`…@s.whatsapp.net`), nil before.
    public var jid: String?
    public var lid: String?
    public var pushName: String
    public var state: DeviceState
    public var createdAt: Date
    public var updatedAt: Date
    /// Free-form settings, a JSON object (text).
    public var settings: String

    public init(
        id: DeviceID, jid: String? = nil, lid: String? = nil, pushName: String = "",
        state: DeviceState = .disconnected, createdAt: Date, updatedAt: Date, settings: String = "{}"
    ) {
        self.id = id
        self.jid = jid
        self.lid = lid
        self.pushName = pushName
        self.state = state
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.settings = settings
    }
}

extension RegisteredDevice: FetchableRecord, PersistableRecord {
    public static var databaseTableName: String { "device" }
}

extension DeviceState: DatabaseValueConvertible {}

extension DeviceID: DatabaseValueConvertible {
    public var databaseValue: DatabaseValue { rawValue.databaseValue }

    public static func fromDatabaseValue(_ dbValue: DatabaseValue) -> DeviceID? {
        guard let text = String.fromDatabaseValue(dbValue) else { return nil }
        return try? DeviceID(text)
    }
}
