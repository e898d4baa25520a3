import Foundation
import WAClient

/// Everything `wabridge serve` needs to start, resolved from (highest first)
/// command-line flags, `WABRIDGE_*` environment variables, an optional
/// configuration file, and the documented defaults below.
///
/// The file uses the same names as the environment (`WABRIDGE_AMQP_URL=…`),
/// one per line, `#` for comments, so an operator can move a setting between
/// the environment and the file without renaming it.
public struct BridgeConfiguration: Sendable, Equatable {
    /// Broker URL, `amqp://` or `amqps://`; several (nodes of one cluster)
    /// comma-separated, tried in turn.
    public var amqpURL: String = "amqp://guest:guest@127.0.0.1:5672/"
    /// CA bundle to verify the broker's certificate (`amqps://` only).
    public var amqpCAFile: String?
    /// Client certificate and key for mutual TLS (`amqps://` only).
    public var amqpCertFile: String?
    public var amqpKeyFile: String?
    /// Verify the broker's certificate and host name (`amqps://` only).
    public var amqpVerifyPeer: Bool = true
    /// AMQP heartbeat in seconds; 0 disables it (not recommended).
    public var amqpHeartbeat: Int = 30
    /// Prefix of every exchange and queue name (`wa` → `wa.commands`).
    public var topologyPrefix: String = "wa"
    /// Type of the command, unrouted and dead-letter queues the bridge declares.
    public var queueType: BridgeTopology.QueueType = .classic
    /// Quorum queues: deliveries of one message before the broker dead-letters it.
    public var queueDeliveryLimit: Int = 20
    /// Folder holding the registry and per-device SQLite databases.
    public var dataDir: String = "./data"
    /// `postgres://user:pass@host:port/db`: registry, keys and data in that PostgreSQL database
    /// (media stays under `dataDir`); nil keeps them in SQLite files under `dataDir`.
    public var databaseURL: String?
    /// Admin HTTP listen address and port.
    public var adminHost: String = "127.0.0.1"
    public var adminPort: Int = 8080
    /// Bearer token for the admin HTTP endpoint. Without one the endpoint
    /// refuses to listen on anything but loopback.
    public var adminToken: String?
    /// `trace`, `debug`, `info`, `notice`, `warning`, `error`, `critical`.
    public var logLevel: String = "info"
    /// `json` (one object per line) or `text`.
    public var logFormat: String = "json"
    /// Name this worker gives its broker connection (shown in the management UI).
    public var workerName: String = "wabridge"
    /// WhatsApp's chat endpoint (`ws://` or `wss://`); point it at `wabridge-sim` for tests and demos.
    public var waURL: String = "wss://web.whatsapp.com/ws/chat"
    /// The Noise certificate root as 64 hex digits (a Curve25519 public key); unset = WhatsApp's real root.
    public var waRootKey: String?
    /// The WhatsApp Web version to claim, e.g. `2.3000.1045649367`; unset = the built-in
    /// `WAClientConfiguration.defaultAppVersion`. For when WhatsApp refuses ours (405, `CLIENT_OUTDATED`).
    public var waVersion: [UInt32]?
    /// Seconds over which logged-in devices reconnect at start (no thundering herd).
    public var reconnectSpread: Double = 10
    /// Seconds a command waits for a `disconnected`/`logged_out` device before `DEVICE_NOT_CONNECTED`.
    public var commandWait: Double = 30
    /// WhatsApp sends per second per device (token bucket rate) and the burst after a pause.
    public var sendRate: Double = 1
    public var sendBurst: Int = 5
    /// History sync: messages older than this many days are not kept (0: no age bound) ...
    public var historyDays: Int = 7
    /// ... and at most this many per device, the newest.
    public var historyMaxMessages: Int = 1_000
    /// Publish stored history messages as `message.received` with `"historical": true`.
    public var historyEvents: Bool = false
    /// This worker's name in the lease table of a shared store; unset: host, pid and a random suffix.
    public var workerID: String?
    /// Seconds a device lease lasts unless renewed (renewed every third of it): a worker that dies
    /// has its devices taken over by the others within about 1.3 × this.
    public var leaseSeconds: Double = 15
    /// Seconds an admin request forwarded to the device's owner waits for its answer before
    /// `OWNER_UNREACHABLE` (a QR login waits its QR time on top).
    public var controlTimeout: Double = 15

    public init() {}

    /// The setting names, as used in the environment and the file.
    public enum Key: String, CaseIterable, Sendable {
        case amqpURL = "WABRIDGE_AMQP_URL"
        case amqpCAFile = "WABRIDGE_AMQP_CA_FILE"
        case amqpCertFile = "WABRIDGE_AMQP_CERT_FILE"
        case amqpKeyFile = "WABRIDGE_AMQP_KEY_FILE"
        case amqpVerifyPeer = "WABRIDGE_AMQP_VERIFY_PEER"
        case amqpHeartbeat = "WABRIDGE_AMQP_HEARTBEAT"
        case topologyPrefix = "WABRIDGE_TOPOLOGY_PREFIX"
        case queueType = "WABRIDGE_QUEUE_TYPE"
        case queueDeliveryLimit = "WABRIDGE_QUEUE_DELIVERY_LIMIT"
        case dataDir = "WABRIDGE_DATA_DIR"
        case databaseURL = "WABRIDGE_DATABASE_URL"
        case adminHost = "WABRIDGE_ADMIN_HOST"
        case adminPort = "WABRIDGE_ADMIN_PORT"
        case adminToken = "WABRIDGE_ADMIN_TOKEN"
        case logLevel = "WABRIDGE_LOG_LEVEL"
        case logFormat = "WABRIDGE_LOG_FORMAT"
        case workerName = "WABRIDGE_WORKER_NAME"
        case waURL = "WABRIDGE_WA_URL"
        case waRootKey = "WABRIDGE_WA_ROOT_KEY"
        case waVersion = "WABRIDGE_WA_VERSION"
        case reconnectSpread = "WABRIDGE_RECONNECT_SPREAD"
        case commandWait = "WABRIDGE_COMMAND_WAIT"
        case sendRate = "WABRIDGE_SEND_RATE"
        case sendBurst = "WABRIDGE_SEND_BURST"
        case historyDays = "WABRIDGE_HISTORY_DAYS"
        case historyMaxMessages = "WABRIDGE_HISTORY_MAX_MESSAGES"
        case historyEvents = "WABRIDGE_HISTORY_EVENTS"
        case workerID = "WABRIDGE_WORKER_ID"
        case leaseSeconds = "WABRIDGE_LEASE_SECONDS"
        case controlTimeout = "WABRIDGE_CONTROL_TIMEOUT"
    }

    /// Resolves the configuration. `flags` holds only the settings given on
    /// the command line; each layer overrides the ones below it.
    public static func resolve(
        flags: [Key: String], environment: [String: String], fileContents: String?
    ) throws(ConfigurationError) -> BridgeConfiguration {
        var values: [Key: String] = [:]
        if let fileContents {
            for (key, value) in try parseFile(fileContents) { values[key] = value }
        }
        for key in Key.allCases {
            if let v = environment[key.rawValue] { values[key] = v }
        }
        for (key, value) in flags { values[key] = value }

        var c = BridgeConfiguration()
        for (key, value) in values { try c.apply(key, value) }
        try c.validate()
        return c
    }

    /// Parses `KEY=value` lines. Unknown `WABRIDGE_*` names are errors so a
    /// typo does not silently fall back to a default.
    static func parseFile(_ text: String) throws(ConfigurationError) -> [(Key, String)] {
        var out: [(Key, String)] = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let eq = line.firstIndex(of: "=") else {
                throw ConfigurationError(
                    code: .fileSyntax, message: "line \(index + 1): expected NAME=value")
            }
            let name = line[..<eq].trimmingCharacters(in: .whitespaces)
            var value = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, let first = value.first, first == "\"" || first == "'", value.last == first {
                value = String(value.dropFirst().dropLast())
            }
            guard let key = Key(rawValue: name) else {
                throw ConfigurationError(
                    code: .unknownSetting, message: "line \(index + 1): unknown setting \(name)")
            }
            out.append((key, value))
        }
        return out
    }

    mutating func apply(_ key: Key, _ value: String) throws(ConfigurationError) {
        func int(_ v: String) throws(ConfigurationError) -> Int {
            guard let n = Int(v) else {
                throw ConfigurationError(code: .invalidValue, message: "\(key.rawValue): not a number: \(v)")
            }
            return n
        }
        func bool(_ v: String) throws(ConfigurationError) -> Bool {
            switch v.lowercased() {
            case "1", "true", "yes", "on": return true
            case "0", "false", "no", "off": return false
            default:
                throw ConfigurationError(code: .invalidValue, message: "\(key.rawValue): not a boolean: \(v)")
            }
        }
        let optional: String? = value.isEmpty ? nil : value
        switch key {
        case .amqpURL: amqpURL = value
        case .amqpCAFile: amqpCAFile = optional
        case .amqpCertFile: amqpCertFile = optional
        case .amqpKeyFile: amqpKeyFile = optional
        case .amqpVerifyPeer: amqpVerifyPeer = try bool(value)
        case .amqpHeartbeat: amqpHeartbeat = try int(value)
        case .topologyPrefix: topologyPrefix = value
        case .queueType:
            guard let t = BridgeTopology.QueueType(rawValue: value.lowercased()) else {
                throw ConfigurationError(code: .invalidValue, message: "\(key.rawValue): classic or quorum: \(value)")
            }
            queueType = t
        case .queueDeliveryLimit:
            let n = try int(value)
            guard (1...1_000_000).contains(n) else {
                throw ConfigurationError(code: .invalidValue, message: "\(key.rawValue): 1...1000000: \(value)")
            }
            queueDeliveryLimit = n
        case .dataDir: dataDir = value
        case .databaseURL: databaseURL = optional
        case .adminHost: adminHost = value
        case .adminPort: adminPort = try int(value)
        case .adminToken: adminToken = optional
        case .logLevel: logLevel = value.lowercased()
        case .logFormat: logFormat = value.lowercased()
        case .workerName: workerName = value
        case .waURL: waURL = value
        case .waRootKey: waRootKey = optional?.lowercased()
        case .waVersion:
            guard let optional else { waVersion = nil; break }
            guard let version = WAClientConfiguration.parseVersion(optional) else {
                throw ConfigurationError(code: .invalidValue, message: "\(key.rawValue): three dot-separated numbers like 2.3000.1045649367: \(value)")
            }
            waVersion = version
        case .reconnectSpread:
            guard let d = Double(value), d >= 0, d <= 3600 else {
                throw ConfigurationError(code: .invalidValue, message: "\(key.rawValue): seconds 0...3600: \(value)")
            }
            reconnectSpread = d
        case .commandWait:
            guard let d = Double(value), d >= 0, d <= 86_400 else {
                throw ConfigurationError(code: .invalidValue, message: "\(key.rawValue): seconds 0...86400: \(value)")
            }
            commandWait = d
        case .sendRate:
            guard let d = Double(value), d > 0, d <= 1_000 else {
                throw ConfigurationError(code: .invalidValue, message: "\(key.rawValue): sends per second, over 0 and at most 1000: \(value)")
            }
            sendRate = d
        case .sendBurst:
            let n = try int(value)
            guard (1...10_000).contains(n) else {
                throw ConfigurationError(code: .invalidValue, message: "\(key.rawValue): 1...10000: \(value)")
            }
            sendBurst = n
        case .historyDays:
            let n = try int(value)
            guard (0...36_500).contains(n) else {
                throw ConfigurationError(code: .invalidValue, message: "\(key.rawValue): days 0...36500 (0: no age bound): \(value)")
            }
            historyDays = n
        case .historyMaxMessages:
            let n = try int(value)
            guard (0...10_000_000).contains(n) else {
                throw ConfigurationError(code: .invalidValue, message: "\(key.rawValue): 0...10000000: \(value)")
            }
            historyMaxMessages = n
        case .historyEvents: historyEvents = try bool(value)
        case .workerID:
            guard let optional else { workerID = nil; break }
            guard optional.count <= 128, optional.allSatisfy({ $0.isLetter || $0.isNumber || "._-".contains($0) }) else {
                throw ConfigurationError(code: .invalidValue, message: "\(key.rawValue): up to 128 letters, digits, '.', '_' or '-': \(value)")
            }
            workerID = optional
        case .leaseSeconds:
            guard let d = Double(value), d >= 3, d <= 600 else {
                throw ConfigurationError(code: .invalidValue, message: "\(key.rawValue): seconds 3...600: \(value)")
            }
            leaseSeconds = d
        case .controlTimeout:
            guard let d = Double(value), d >= 1, d <= 300 else {
                throw ConfigurationError(code: .invalidValue, message: "\(key.rawValue): seconds 1...300: \(value)")
            }
            controlTimeout = d
        }
    }

    func validate() throws(ConfigurationError) {
        try Self.validateBrokerURLs(amqpURL)
        guard (0...65535).contains(amqpHeartbeat) else {
            throw ConfigurationError(code: .invalidValue, message: "WABRIDGE_AMQP_HEARTBEAT must be 0...65535")
        }
        guard (1...65535).contains(adminPort) else {
            throw ConfigurationError(code: .invalidValue, message: "WABRIDGE_ADMIN_PORT must be 1...65535")
        }
        let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
        guard levels.contains(logLevel) else {
            throw ConfigurationError(
                code: .invalidValue, message: "WABRIDGE_LOG_LEVEL must be one of \(levels.joined(separator: ", "))")
        }
        guard ["json", "text"].contains(logFormat) else {
            throw ConfigurationError(code: .invalidValue, message: "WABRIDGE_LOG_FORMAT must be json or text")
        }
        guard !topologyPrefix.isEmpty, topologyPrefix.allSatisfy({ $0.isLetter || $0.isNumber || "._-".contains($0) }) else {
            throw ConfigurationError(
                code: .invalidValue, message: "WABRIDGE_TOPOLOGY_PREFIX must be letters, digits, '.', '_' or '-'")
        }
        guard waURL.hasPrefix("ws://") || waURL.hasPrefix("wss://"), URL(string: waURL)?.host != nil else {
            throw ConfigurationError(code: .invalidValue, message: "WABRIDGE_WA_URL must be a ws:// or wss:// URL")
        }
        if let waRootKey, waRootKey.count != 64 || !waRootKey.allSatisfy(\.isHexDigit) {
            throw ConfigurationError(code: .invalidValue, message: "WABRIDGE_WA_ROOT_KEY must be 64 hex digits")
        }
        if adminToken == nil && !Self.isLoopback(adminHost) {
            throw ConfigurationError(
                code: .adminTokenRequired,
                message: "admin HTTP on \(adminHost) needs WABRIDGE_ADMIN_TOKEN; without a token it listens on loopback only")
        }
    }

    /// One URL, or several comma-separated; positions, never the text, in
    /// messages (a URL may carry a password).
    static func validateBrokerURLs(_ list: String) throws(ConfigurationError) {
        let urls = list.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        for (i, u) in urls.enumerated() where !(u.hasPrefix("amqp://") || u.hasPrefix("amqps://")) {
            throw ConfigurationError(
                code: .invalidValue,
                message: urls.count == 1 ? "WABRIDGE_AMQP_URL must start with amqp:// or amqps://"
                    : "WABRIDGE_AMQP_URL: URL \(i + 1) of \(urls.count) must start with amqp:// or amqps:// (several URLs are comma-separated)")
        }
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host == "[::1]" || host.hasPrefix("127.")
    }
}

/// A configuration that cannot be used, with a code an operator can act on.
public struct ConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case fileSyntax = "config.file_syntax"
        case fileUnreadable = "config.file_unreadable"
        case unknownSetting = "config.unknown_setting"
        case invalidValue = "config.invalid_value"
        case adminTokenRequired = "config.admin_token_required"
    }
    public var code: Code
    public var message: String
    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { "\(code.rawValue): \(message)" }
}
