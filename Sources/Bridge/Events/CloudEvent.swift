import BridgeStore
import Foundation

/// The event types the bridge publishes (contract, "Events"). The AMQP
/// routing key is `<deviceId>.<rawValue>`; the CloudEvents `type` is
/// `wabridge.<rawValue>.v1`; `schemas/events/<rawValue>.json` describes `data`.
public enum EventType: String, Sendable, CaseIterable, Codable {
    case connectionState = "connection.state"
    case loginQR = "login.qr"
    case loginPairCode = "login.pair_code"
    case loginSuccess = "login.success"
    case loggedOut = "logged_out"
    case messageReceived = "message.received"
    case messageStatus = "message.status"
    case commandRejected = "command.rejected"
    case deviceCreated = "device.created"
    case deviceDeleted = "device.deleted"
    case deviceError = "device.error"
    case historySync = "history.sync"
    case messageUndecryptable = "message.undecryptable"
    case identityChanged = "identity.changed"
    case offlineSync = "offline.sync"
    case appStateSyncFailed = "app_state.sync_failed"

    public var cloudEventType: String { "wabridge.\(rawValue).v1" }
}

/// One CloudEvents 1.0 event in structured JSON mode. `id` is stable: the same
/// fact published twice carries the same id, so subscribers can deduplicate.
public struct CloudEvent: Sendable, Equatable {
    public var id: String
    public var type: EventType
    public var deviceID: DeviceID
    public var time: Date
    public var jid: String?
    public var correlationID: String?
    public var data: JSONValue

    public init(id: String, type: EventType, deviceID: DeviceID, time: Date = Date(),
                jid: String? = nil, correlationID: String? = nil, data: JSONValue) {
        self.id = id
        self.type = type
        self.deviceID = deviceID
        self.time = time
        self.jid = jid
        self.correlationID = correlationID
        self.data = data
    }

    public var routingKey: String { "\(deviceID.rawValue).\(type.rawValue)" }
    public var source: String { "wabridge/\(deviceID.rawValue)" }

    /// The structured-mode document (`application/cloudevents+json`).
    public var document: JSONValue {
        var o: [String: JSONValue] = [
            "specversion": "1.0",
            "id": .string(id),
            "source": .string(source),
            "type": .string(type.cloudEventType),
            "time": .string(CloudEvent.timeString(time)),
            "subject": .string(deviceID.rawValue),
            "datacontenttype": "application/json",
            "deviceid": .string(deviceID.rawValue),
            "data": data,
        ]
        if let jid { o["jid"] = .string(jid) }
        if let correlationID { o["correlationid"] = .string(correlationID) }
        return .object(o)
    }

    public func encoded() -> Data { document.encoded() }

    /// RFC 3339 with milliseconds, UTC.
    public static func timeString(_ date: Date) -> String { timeStyle.format(date) }

    /// Parses what `timeString` writes.
    public static func time(from text: String) -> Date? { try? timeStyle.parse(text) }

    /// A value-type format style: building an `ISO8601DateFormatter` per event cost
    /// about a tenth of the worker's CPU in `bridge-bench`.
    private static let timeStyle = Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt)
}

/// Where the bridge hands events to be published. The implementation writes
/// the event to the device's outbox (durable when `record` returns) and
/// publishes it with confirms later; callers never talk to the broker.
public protocol EventRecording: Sendable {
    /// Durable when it returns: the event is in the device's outbox (or already
    /// published, for an id seen before).
    func record(_ event: CloudEvent) async throws
    /// Records several events in order; durable when it returns (a recorder may
    /// write them in one transaction).
    func record(contentsOf events: [CloudEvent]) async throws
}

extension EventRecording {
    public func record(contentsOf events: [CloudEvent]) async throws {
        for event in events { try await record(event) }
    }
}
