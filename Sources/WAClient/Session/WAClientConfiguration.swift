import Foundation
import NIOSSL
import WACrypto

/// How a `WAClient` connects and how it keeps its link alive.
public struct WAClientConfiguration: Sendable {
    /// WhatsApp's chat endpoint. `ws://` is allowed (tests, local simulator).
    public var endpoint: URL = URL(string: "wss://web.whatsapp.com/ws/chat")!
    /// Sent as the WebSocket `Origin` header.
    public var origin = "https://web.whatsapp.com"
    /// How media hosts are reached (the history-sync download): `https` for WhatsApp's;
    /// the simulator's loopback media host speaks `http`.
    public var mediaScheme = "https"
    /// The Noise certificate root to trust; nil means WhatsApp's real root.
    public var noiseTrustRoot: Curve25519PublicKey?
    /// Extra TLS roots (PEM/DER certificates) to trust for `wss://`; nil means the system's.
    public var tlsTrustRoots: [NIOSSLCertificate]?
    /// The WhatsApp Web version we claim (UserAgent.appVersion and the registration build hash).
    /// WhatsApp refuses stale builds with `<failure reason=405>`; operators override it with
    /// `WABRIDGE_WA_VERSION` when WhatsApp moves on before we release.
    public var appVersion: [UInt32] = WAClientConfiguration.defaultAppVersion
    /// DeviceProps.os: the name a phone shows for this linked device.
    public var deviceName = "wabridge"
    /// QR strings as `https://wa.me/settings/linked_devices#ref,noise,identity,adv,platform` (true, the
    /// default: whatsmeow pair.go makeQRData's current form) or the older bare `ref,noise,identity,adv` (false).
    public var qrLinkFormat = true

    public var keepalive = KeepalivePolicy()
    public var reconnect = ReconnectPolicy()
    /// How long an IQ waits for its answer (WhatsApp clients use 75 s).
    public var iqTimeout: Duration = .seconds(75)
    /// Bound on opening the WebSocket plus the Noise handshake.
    public var connectTimeout: Duration = .seconds(20)
    /// How long each QR ref is shown: the first, then each later one.
    public var qrFirstTimeout: Duration = .seconds(60)
    public var qrLaterTimeout: Duration = .seconds(20)
    /// At most this many IQs wait for answers at once.
    public var maxPendingIQs = 256
    /// Largest WebSocket message and Noise frame accepted from the server.
    public var maxFrameSize = 4 << 20
    /// Inbound chunks buffered before the socket is no longer read until the client catches up (backpressure).
    public var maxInboundBacklog = 1024
    /// Buffered high-volume events (messages, receipts, identity changes) for a slow consumer
    /// of `events`, the oldest of them dropped beyond it. State, QR, pairing, login and
    /// logout events are never dropped (`WAClient.events`).
    public var eventBufferSize = 1024
    /// Asked before every stanza and every connection attempt. False means this process no
    /// longer owns the device (its lease lapsed while it was paused or cut off from the store):
    /// the stanza is refused with `client.not_owner` and the link closed, so a resumed worker
    /// never speaks for a device another worker took over. nil: always allowed.
    public var ownership: (@Sendable () -> Bool)?

    public init() {}

    /// A configuration for a local simulator: plain or TLS endpoint, its Noise root trusted,
    /// short timers (keepalive and backoff) so tests run fast.
    public static func local(endpoint: URL, noiseRoot: Curve25519PublicKey) -> WAClientConfiguration {
        var c = WAClientConfiguration()
        c.endpoint = endpoint
        c.noiseTrustRoot = noiseRoot
        c.mediaScheme = "http"
        c.reconnect = ReconnectPolicy(base: .milliseconds(50), cap: .milliseconds(500), jitter: 0.2)
        c.connectTimeout = .seconds(5)
        c.iqTimeout = .seconds(5)
        return c
    }

    var appVersionString: String { Self.versionString(appVersion) }

    /// The one place the default version lives. The figure is whatsmeow's `waVersion`
    /// (store/clientpayload.go at 33cfac5, Aug 2026), which tracks the version web.whatsapp.com
    /// serves; builds from 1025473630 (Dec 2025) to 1031716404 (Jun 2026) were reported refused with
    /// 405 after a few months, so raise this with every release.
    public static let defaultAppVersion: [UInt32] = [2, 3000, 1_045_649_367]

    /// `"2.3000.1045649367"` as `[2, 3000, 1045649367]`: exactly three dot-separated numbers, the
    /// first not zero; nil for anything else.
    public static func parseVersion(_ text: String) -> [UInt32]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { return nil }
        let numbers = parts.compactMap { part -> UInt32? in
            guard !part.isEmpty, part.allSatisfy(\.isASCII), part.allSatisfy(\.isNumber) else { return nil }
            return UInt32(part)
        }
        guard numbers.count == 3, numbers[0] > 0 else { return nil }
        return numbers
    }

    public static func versionString(_ version: [UInt32]) -> String { version.map(String.init).joined(separator: ".") }
}

/// Keepalive: a `w:p` ping every `minInterval…maxInterval` (random), each
/// answered within `timeout`. An unanswered ping closes the link when the
/// server sent nothing else meanwhile (dead link), or when no ping was
/// answered for `maxFailTime`; otherwise it is tolerated.
public struct KeepalivePolicy: Sendable, Equatable {
    public var minInterval: Duration
    public var maxInterval: Duration
    public var timeout: Duration
    /// How long pings may go unanswered while the server still sends other
    /// frames (a lost or starved ping on a link that shows life), before the
    /// link is closed anyway. whatsmeow's KeepAliveMaxFailTime is 3 minutes.
    public var maxFailTime: Duration

    public init(minInterval: Duration = .seconds(20), maxInterval: Duration = .seconds(30), timeout: Duration = .seconds(10),
                maxFailTime: Duration = .seconds(180)) {
        self.minInterval = minInterval
        self.maxInterval = max(minInterval, maxInterval)
        self.timeout = timeout
        self.maxFailTime = maxFailTime
    }

    /// The longest a dead (silent) link can go unnoticed: one interval plus the reply timeout.
    public var detectionBound: Duration { maxInterval + timeout }

    /// The longest a link that sends frames but never answers a ping stays up:
    /// `maxFailTime` after the last answer, plus the ping that notices it.
    public var unansweredPingBound: Duration { maxFailTime + maxInterval + timeout }

    /// The wait before the next ping, for a uniform sample `unit` in 0...1.
    public func interval(unit: Double) -> Duration {
        minInterval + (maxInterval - minInterval) * min(max(unit, 0), 1)
    }
}

/// Reconnect delays: exponential from `base`, capped at `cap`, each reduced
/// by up to `jitter` (a fraction, 0…1) at random so that many devices do not
/// reconnect in step. `maxAttempts` nil means keep trying.
public struct ReconnectPolicy: Sendable, Equatable {
    public var base: Duration
    public var cap: Duration
    public var jitter: Double
    public var maxAttempts: Int?

    public init(base: Duration = .seconds(1), cap: Duration = .seconds(60), jitter: Double = 0.25, maxAttempts: Int? = nil) {
        self.base = base
        self.cap = max(base, cap)
        self.jitter = min(max(jitter, 0), 1)
        self.maxAttempts = maxAttempts
    }

    /// The delay before attempt `attempt` (1 = the first retry), for a uniform sample `unit` in 0...1.
    public func delay(attempt: Int, unit: Double) -> Duration {
        let exponent = min(max(attempt - 1, 0), 30)
        let raw = base * Double(1 << exponent)
        let capped = raw > cap ? cap : raw
        return capped * (1 - jitter * min(max(unit, 0), 1))
    }
}
