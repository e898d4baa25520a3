import CRabbitMQ
import Foundation

/// How to reach and keep talking to a broker.
public struct AMQPConfiguration: Sendable {
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

    public var endpoint: Endpoint
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

    public init(
        url: String, tls: TLS = TLS(), heartbeat: UInt16 = 30, connectionName: String = "wabridge",
        connectTimeout: Duration = .seconds(10), rpcTimeout: Duration = .seconds(30),
        reconnect: ReconnectPolicy = ReconnectPolicy(), frameMax: Int32 = 131_072,
        closeTimeout: Duration = .seconds(10)
    ) throws(AMQPError) {
        self.endpoint = try Endpoint(url: url)
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
