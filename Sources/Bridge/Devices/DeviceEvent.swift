import BridgeStore
import Foundation

/// What the device manager publishes, in order per device (the AMQP issue
/// turns these into CloudEvents on `wa.events`).
public struct DeviceEvent: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case created
        case deleted
        /// A state change, already recorded in the registry.
        case state(from: DeviceState, to: DeviceState, reason: String)
        /// A QR code to show (rotates); `expiresAt` is when the phone stops accepting it.
        case qr(text: String, expiresAt: Date)
        case pairingCode(String)
        case loggedIn(jid: String, lid: String?, pushName: String)
        case loggedOut(reason: String)
        /// The device stopped and needs an operator: a stable `code` (`CLIENT_OUTDATED`,
        /// `TEMPORARILY_BANNED`, `REPLACED`, …), a message saying what to do, and the server's
        /// failure reason when there was one.
        case error(code: String, message: String, reason: Int?)
        /// A peer device's identity key changed (reinstall, new phone): the device as a JID,
        /// the keys (public, base64) when known.
        case identityChanged(jid: String, previousKey: String?, newKey: String?)
        /// The server delivered its offline queue (`<ib><offline count>`).
        case offlineSync(count: Int)
        /// An app-state collection could not be synced (a `WAClientError` code; no key or value).
        case appStateSyncFailed(collection: String, version: UInt64, code: String)
    }

    public let deviceID: DeviceID
    public let kind: Kind
    public let time: Date

    public init(deviceID: DeviceID, kind: Kind, time: Date = Date()) {
        self.deviceID = deviceID
        self.kind = kind
        self.time = time
    }
}

/// A device as the admin API shows it.
public struct DeviceInfo: Sendable, Equatable, Codable {
    public var id: String
    public var state: DeviceState
    public var jid: String?
    public var lid: String?
    public var pushName: String
    public var createdAt: Date
    public var updatedAt: Date
    /// The worker running the device now (holding its live lease); nil when none does. Only
    /// with workers sharing a store (`wabridge serve`).
    public var worker: String?

    init(_ r: RegisteredDevice, worker: String? = nil) {
        self.worker = worker
        id = r.id.rawValue
        state = r.state
        jid = r.jid
        lid = r.lid
        pushName = r.pushName
        createdAt = r.createdAt
        updatedAt = r.updatedAt
    }
}

/// The QR code currently showing for a device.
public struct QRLogin: Sendable, Equatable, Codable {
    public var text: String
    public var expiresAt: Date
    public var index: Int
}
