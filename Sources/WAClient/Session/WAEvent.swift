import Foundation
import WABinary
import WASignal

/// The connection states a bridge shows for a device.
public enum ConnectionState: String, Sendable, Hashable {
    case disconnected
    case connecting
    case connected
    case reconnecting
    case loggedOut = "logged_out"
}

/// Why the state changed.
public enum StateReason: Sendable, Hashable, CustomStringConvertible {
    case started
    case transportOpened
    case awaitingPairing
    case loggedIn
    case restartRequired
    case transportLost(String)
    case keepaliveTimeout
    case streamError(code: String)
    case replaced
    case deviceRemoved
    case failure(LoginFailure)
    case stoppedByOwner
    case qrTimeout
    case gaveUp(attempts: Int)

    public var description: String {
        switch self {
        case .started: return "started"
        case .transportOpened: return "transport_opened"
        case .awaitingPairing: return "awaiting_pairing"
        case .loggedIn: return "logged_in"
        case .restartRequired: return "restart_required"
        case .transportLost(let why): return "transport_lost(\(why))"
        case .keepaliveTimeout: return "keepalive_timeout"
        case .streamError(let code): return "stream_error(\(code))"
        case .replaced: return "replaced"
        case .deviceRemoved: return "device_removed"
        case .failure(let f): return "failure(\(f.reason))"
        case .stoppedByOwner: return "stopped_by_owner"
        case .qrTimeout: return "qr_timeout"
        case .gaveUp(let n): return "gave_up(\(n))"
        }
    }
}

/// One state change: from, to, why, and (for reconnecting) the coming delay.
public struct StateTransition: Sendable, Hashable, CustomStringConvertible {
    public let from: ConnectionState
    public let to: ConnectionState
    public let reason: StateReason
    public let retryIn: Duration?

    public init(from: ConnectionState, to: ConnectionState, reason: StateReason, retryIn: Duration? = nil) {
        self.from = from
        self.to = to
        self.reason = reason
        self.retryIn = retryIn
    }

    public var description: String {
        "\(from.rawValue) → \(to.rawValue) (\(reason))" + (retryIn.map { " retry in \($0)" } ?? "")
    }
}

/// A `<failure reason=…>` the server sent instead of `<success>`.
///
/// The policy is whatsmeow's (connectionevents.go `handleConnectFailure`, types/events ConnectFailureReason):
/// 401/403/406 log out (keys wiped), 402 is a temporary ban, 405 an outdated client, 500 and 503
/// the only reasons retried; any other reason (400, 409, 413, 414, 415, 418, 501, unknown) stops the
/// device with its code, because logging in again and again after a refusal risks a ban.
public struct LoginFailure: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        /// 401: the server no longer knows this device.
        case loggedOut
        /// 402: temporary ban; `banCode` and `expiresIn` tell more.
        case temporaryBan
        /// 403: account locked (whatsmeow: main device gone).
        case locked
        /// 405: this client version is too old.
        case clientOutdated
        /// 406: banned (whatsmeow: unknown logout).
        case banned
        /// 500, 503: the server is unwell; retry with backoff.
        case serverUnavailable
        /// Any other reason: refused; stop with the code, keep the keys.
        case refused
    }

    public let reason: Int
    public let kind: Kind
    /// Temporary-ban reason code (`code` attribute), when given.
    public let banCode: Int?
    /// Seconds until a temporary ban ends (`expire` attribute), when given.
    public let expiresIn: Int?

    public init(reason: Int, banCode: Int? = nil, expiresIn: Int? = nil) {
        self.reason = reason
        self.banCode = banCode
        self.expiresIn = expiresIn
        switch reason {
        case 401: kind = .loggedOut
        case 402: kind = .temporaryBan
        case 403: kind = .locked
        case 405: kind = .clientOutdated
        case 406: kind = .banned
        case 500, 503: kind = .serverUnavailable
        default: kind = .refused
        }
    }

    /// Whether the client should stop instead of reconnecting.
    public var isPermanent: Bool { kind != .serverUnavailable }

    /// A stable code for operators and events (`CLIENT_OUTDATED`, `BAD_USER_AGENT`, …); reasons
    /// without a name of their own are `LOGIN_REFUSED` (the number travels beside it).
    public var code: String {
        switch reason {
        case 400: "LOGIN_REFUSED"
        case 401: "LOGGED_OUT"
        case 402: "TEMPORARILY_BANNED"
        case 403: "ACCOUNT_LOCKED"
        case 405: "CLIENT_OUTDATED"
        case 406: "ACCOUNT_BANNED"
        case 409: "BAD_USER_AGENT"
        case 413: "AUTH_TOKEN_EXPIRED"
        case 414: "AUTH_TOKEN_INVALID"
        case 415: "ACCOUNT_NOT_FOUND"
        case 418: "CLIENT_UNKNOWN"
        case 500: "SERVER_ERROR"
        case 501: "SERVER_EXPERIMENTAL"
        case 503: "SERVICE_UNAVAILABLE"
        default: "LOGIN_REFUSED"
        }
    }
}

/// Who we are once logged in.
public struct LoginInfo: Sendable, Hashable {
    public let jid: JID
    public let lid: JID?
    public let pushName: String
    public let platform: String
}

/// One QR code to show, and how long it is valid.
public struct QRCode: Sendable, Hashable {
    public let text: String
    public let validFor: Duration
    /// 0 for the first code of a connection, then 1, 2, …
    public let index: Int
}

/// What the QR login stream yields.
public enum QRLoginEvent: Sendable, Hashable {
    case code(QRCode)
    case success(LoginInfo)
}

/// Why the client stopped for good (it will not reconnect by itself).
public enum StopReason: Sendable, Hashable {
    case ownerRequested
    case replaced
    case loggedOut(StateReason)
    case banned(LoginFailure)
    case clientOutdated
    /// A `<failure>` with a reason that is neither a logout, a ban, outdated nor 500/503.
    case refused(LoginFailure)
    case gaveUp(attempts: Int)
    case qrTimeout
}

/// `<ib><offline_preview count appdata message notification receipt>`: what the offline queue holds.
public struct OfflineSyncPreview: Sendable, Hashable {
    public let total: Int
    public let appDataChanges: Int
    public let messages: Int
    public let notifications: Int
    public let receipts: Int

    public init(total: Int, appDataChanges: Int, messages: Int, notifications: Int, receipts: Int) {
        self.total = total
        self.appDataChanges = appDataChanges
        self.messages = messages
        self.notifications = notifications
        self.receipts = receipts
    }
}

/// Everything a bridge publishes about a device, in order.
public enum WAEvent: Sendable, Hashable {
    case state(StateTransition)
    case qr(QRCode)
    case pairingCode(String)
    /// The phone accepted this device; a restart and login follow.
    case paired(jid: JID, lid: JID?, platform: String, businessName: String)
    case loggedIn(LoginInfo)
    /// The server delivered its offline queue (`<ib><offline count>`).
    case offlineSyncCompleted(count: Int)
    /// The server announced what its offline queue holds (`<ib><offline_preview>`), before delivering it.
    case offlineSyncPreview(OfflineSyncPreview)
    /// The phone scanned our QR code without multi-device support (`<ib><downgrade_webclient>`).
    case qrScannedWithoutMultidevice
    /// A pairing method we do not support was offered (passkey linking), or a pairing code could not
    /// be finished: refused, with a stable code.
    case pairingRefused(code: String, reason: String)
    /// The device was logged out; its keys are wiped.
    case loggedOut(StateReason)
    /// The client stopped and will not reconnect.
    case stopped(StopReason)
    /// A message arrived and was decrypted (its delivery receipt is already sent).
    case messageReceived(ReceivedMessage)
    /// A message arrived that could not be decrypted (a retry receipt was sent when allowed, our
    /// phone asked for an `<unavailable>` one): its id, sender, stable reason and whether it may still come.
    case messageUndecryptable(UndecryptableMessage)
    /// A peer's identity key changed (reinstall or new phone) and was accepted, on a message
    /// from it or while sending to it. Only public keys: safe to log and to publish.
    case identityChanged(IdentityChange)
    /// One of our sent messages changed status: `sent` / `failed` from the server's ack (`by` is
    /// then the chat), `delivered`, `read`, `played` from receipts (also from our other devices).
    case messageStatus(ReceiptEvent.StatusUpdate)
    /// An app-state collection could not be synced (a MAC that did not verify, a malformed patch,
    /// a server error): nothing of the failing patch was applied; the device stays connected.
    /// `code` is a `WAClientError` code; no key or value is carried.
    case appStateSyncFailed(collection: String, version: UInt64, code: String)
}

extension WAEvent {
    /// Kinds that can arrive in floods (one per message or receipt); `WAClient.events`
    /// bounds how many of these wait, and never drops the others.
    var isHighVolume: Bool {
        switch self {
        case .messageReceived, .messageUndecryptable, .messageStatus, .identityChanged: true
        case .state, .qr, .pairingCode, .paired, .loggedIn, .offlineSyncCompleted, .offlineSyncPreview,
             .qrScannedWithoutMultidevice, .pairingRefused, .loggedOut, .stopped, .appStateSyncFailed: false
        }
    }
}
