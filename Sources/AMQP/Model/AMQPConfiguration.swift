import CRabbitMQ
import Foundation

/// How to reach and keep talking to a broker.
public struct AMQPConfiguration: Sendable {
    /// Splits a comma-separated list of broker URLs (`WABRIDGE_AMQP_URL`);
    /// blanks around each are dropped. A comma inside a URL must be written
    /// `%2C`.
    public static func splitURLs(_ list: String) -> [String] {
        list.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
    }

    /// Where the broker is, parsed from an `amqp://` or `amqps://` URL.
    public struct Endpoint: Sendable, Equatable {
        public var host: String
        public var port: Int
        public var user: String
        public var password: String
        public var vhost: String
        public var tls: Bool

        /// `amqp[s]://user:pass@host:port/vhost`; the vhost is percent-decoded
        /// (`%2F` is `/`), an empty one means `/`; missing parts default to
        /// guest:guest@localhost:5672 (5671 for amqps).
        public init(url: String) throws(AMQPError) {
            guard url.hasPrefix("amqp://") || url.hasPrefix("amqps://") else {
                throw AMQPError(code: .invalidURL, message: "broker URL must start with amqp:// or amqps://")
            }
            var buffer = Array(url.utf8CString)
            var info = amqp_connection_info()
            let rc = buffer.withUnsafeMutableBufferPointer { ptr in
                amqp_parse_url(ptr.baseAddress, &info)
            }
            guard rc == AMQP_STATUS_OK.rawValue, info.host != nil, let h = info.host.map({ String(cString: $0) }),
                !h.isEmpty
            else {
                throw AMQPError(code: .invalidURL, message: "broker URL is not valid (expected amqp[s]://user:pass@host:port/vhost)")
            }
            host = h
            port = Int(info.port)
            user = info.user.map { String(cString: $0) } ?? "guest"
            password = info.password.map { String(cString: $0) } ?? "guest"
            // `amqp://host/` strictly names the empty vhost, but every broker
            // user means the default one by it.
            let v = info.vhost.map { String(cString: $0) } ?? ""
            vhost = v.isEmpty ? "/" : v
            tls = info.ssl != 0
            guard (1...65535).contains(port) else {
                throw AMQPError(code: .invalidURL, message: "broker URL has an invalid port")
            }
        }

        /// The URL without its password, safe for logs.
        public var redacted: String {
            "\(tls ? "amqps" : "amqp")://\(user)@\(host):\(port)/\(vhost == "/" ? "" : vhost)"
        }
    }

    /// TLS settings for `amqps://`.
    public struct TLS: Sendable, Equatable {
        /// CA bundle that signs the broker's certificate. Defaults to the
        /// system bundle when it exists.
        public var caFile: String?
        /// Client certificate and private key (PEM) for mutual TLS.
        public var certFile: String?
        public var keyFile: String?
        public var verifyPeer: Bool
        public var verifyHostname: Bool

        public init(
            caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil,
            verifyPeer: Bool = true, verifyHostname: Bool = true
        ) {
            self.caFile = caFile
            self.certFile = certFile
            self.keyFile = keyFile
            self.verifyPeer = verifyPeer
            self.verifyHostname = verifyHostname
        }
    }

    /// Exponential backoff with jitter between reconnect attempts.
    public struct ReconnectPolicy: Sendable, Equatable {
        public var enabled: Bool
        public var initialDelay: Duration
        public var maxDelay: Duration
        public var multiplier: Double
        /// Fraction of the delay randomised (0.2 → ±20 %), so many workers
        /// that lost the same broker do not come back in lockstep.
        public var jitter: Double

        public init(
            enabled: Bool = true, initialDelay: Duration = .milliseconds(250),
            maxDelay: Duration = .seconds(30), multiplier: Double = 2, jitter: Double = 0.2
        ) {
            self.enabled = enabled
            self.initialDelay = initialDelay
            self.maxDelay = maxDelay
            self.multiplier = multiplier
            self.jitter = jitter
        }

        /// The delay before attempt `attempt` (1-based), given a random unit value in [0, 1).
        public func delay(attempt: Int, random: Double) -> Duration {
            let base = Double(initialDelay.components.seconds) + Double(initialDelay.components.attoseconds) / 1e18
            let cap = Double(maxDelay.components.seconds) + Double(maxDelay.components.attoseconds) / 1e18
            let exp = min(cap, base * pow(multiplier, Double(max(0, attempt - 1))))
            let spread = exp * jitter * (2 * random - 1)
            let seconds = max(0, min(cap, exp + spread))
            return .milliseconds(Int64(seconds * 1000))
        }
    }

    /// The brokers to try, in order (several nodes of one cluster). Connect
    /// and every reconnect go through them in turn, starting from the last
    /// one that worked; the backoff applies between full rounds. Never empty.
    public var endpoints: [Endpoint] {
        didSet { if endpoints.isEmpty { endpoints = oldValue } }
    }
    /// The first endpoint; setting it replaces the whole list.
    public var endpoint: Endpoint {
        get { endpoints[0] }
        set { endpoints = [newValue] }
    }
    /// Every endpoint without its password, comma-separated, for logs.
    public var redactedEndpoints: String { endpoints.map(\.redacted).joined(separator: ",") }
    public var tls: TLS
    /// Heartbeat interval asked of the broker, in seconds (0 disables).
    public var heartbeat: UInt16
    /// Shown by `rabbitmqctl list_connections client_properties` and the management UI.
    public var connectionName: String
    public var connectTimeout: Duration
    /// Longest wait for a broker reply to a declare, bind, consume… before
    /// the connection is considered broken.
    public var rpcTimeout: Duration
    public var reconnect: ReconnectPolicy
    public var frameMax: Int32
    /// How long `close()` waits for outstanding publisher confirms.
    public var closeTimeout: Duration
    /// How many consumers share one channel at most. Consumers are packed
    /// onto channels up to this bound (each keeps its own prefetch), so one
    /// connection carries far more consumers than the broker's
    /// `channel_max` (2,047 by default); 1 gives every consumer its own
    /// channel. See docs/amqp.md, "Channels and consumers".
    public var consumersPerChannel: Int

    public init(
        url: String, tls: TLS = TLS(), heartbeat: UInt16 = 30, connectionName: String = "wabridge",
        connectTimeout: Duration = .seconds(10), rpcTimeout: Duration = .seconds(30),
        reconnect: ReconnectPolicy = ReconnectPolicy(), frameMax: Int32 = 131_072,
        closeTimeout: Duration = .seconds(10), consumersPerChannel: Int = 32
    ) throws(AMQPError) {
        try self.init(
            urls: [url], tls: tls, heartbeat: heartbeat, connectionName: connectionName, connectTimeout: connectTimeout,
            rpcTimeout: rpcTimeout, reconnect: reconnect, frameMax: frameMax, closeTimeout: closeTimeout,
            consumersPerChannel: consumersPerChannel)
    }

    /// Several brokers (nodes of one cluster), tried in turn.
    public init(
        urls: [String], tls: TLS = TLS(), heartbeat: UInt16 = 30, connectionName: String = "wabridge",
        connectTimeout: Duration = .seconds(10), rpcTimeout: Duration = .seconds(30),
        reconnect: ReconnectPolicy = ReconnectPolicy(), frameMax: Int32 = 131_072,
        closeTimeout: Duration = .seconds(10), consumersPerChannel: Int = 32
    ) throws(AMQPError) {
        guard !urls.isEmpty else { throw AMQPError(code: .invalidURL, message: "no broker URL given") }
        var parsed: [Endpoint] = []
        for (i, u) in urls.enumerated() {
            do {
                parsed.append(try Endpoint(url: u))
            } catch {
                // The URL may hold a password: name its position, not its text.
                throw urls.count == 1 ? error : AMQPError(code: error.code, message: "broker URL \(i + 1) of \(urls.count): \(error.message)")
            }
        }
        guard (1...65_535).contains(consumersPerChannel) else {
            throw AMQPError(code: .invalidArgument, message: "consumersPerChannel must be 1...65535")
        }
        self.endpoints = parsed
        self.consumersPerChannel = consumersPerChannel
        self.tls = tls
        self.heartbeat = heartbeat
        self.connectionName = connectionName
        self.connectTimeout = connectTimeout
        self.rpcTimeout = rpcTimeout
        self.reconnect = reconnect
        self.frameMax = frameMax
        self.closeTimeout = closeTimeout
    }
}

extension Duration {
    var timeval: timeval {
        let c = components
        return CRabbitMQ.timeval(tv_sec: Int(c.seconds), tv_usec: Int(c.attoseconds / 1_000_000_000_000))
    }
    var milliseconds: Int64 {
        let c = components
        return c.seconds * 1000 + c.attoseconds / 1_000_000_000_000_000
    }
}
