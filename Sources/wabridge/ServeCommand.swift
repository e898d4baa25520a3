import AdminHTTP
import AMQP
import ArgumentParser
import Bridge
import BridgeStore
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging
import ServiceLifecycle

/// `wabridge serve`: wiring only. Settings come from flags, then
/// `WABRIDGE_*` variables, then `--config FILE`, then defaults.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the worker until SIGTERM or SIGINT.",
        discussion: """
            Every option can also be set as an environment variable (named in \
            brackets) or in the --config file as NAME=value lines.
            """
    )

    @Option(name: .long, help: "Configuration file of WABRIDGE_NAME=value lines.")
    var config: String?
    @Option(name: .customLong("amqp-url"), help: "Broker URL [WABRIDGE_AMQP_URL] (default amqp://guest:guest@127.0.0.1:5672/).")
    var amqpURL: String?
    @Option(name: .customLong("data-dir"), help: "Folder for SQLite databases [WABRIDGE_DATA_DIR] (default ./data).")
    var dataDir: String?
    @Option(name: .customLong("admin-host"), help: "Admin HTTP address [WABRIDGE_ADMIN_HOST] (default 127.0.0.1).")
    var adminHost: String?
    @Option(name: .customLong("admin-port"), help: "Admin HTTP port [WABRIDGE_ADMIN_PORT] (default 8080).")
    var adminPort: String?
    @Option(name: .customLong("topology-prefix"), help: "Exchange/queue name prefix [WABRIDGE_TOPOLOGY_PREFIX] (default wa).")
    var topologyPrefix: String?
    @Option(name: .customLong("log-level"), help: "trace…critical [WABRIDGE_LOG_LEVEL] (default info).")
    var logLevel: String?
    @Option(name: .customLong("log-format"), help: "json or text [WABRIDGE_LOG_FORMAT] (default json).")
    var logFormat: String?

    func run() async throws {
        var flags: [BridgeConfiguration.Key: String] = [:]
        flags[.amqpURL] = amqpURL
        flags[.dataDir] = dataDir
        flags[.adminHost] = adminHost
        flags[.adminPort] = adminPort
        flags[.topologyPrefix] = topologyPrefix
        flags[.logLevel] = logLevel
        flags[.logFormat] = logFormat

        let cfg: BridgeConfiguration
        do {
            var fileText: String?
            if let config {
                do {
                    fileText = try String(contentsOfFile: config, encoding: .utf8)
                } catch {
                    throw ConfigurationError(code: .fileUnreadable, message: "cannot read \(config): \(error.localizedDescription)")
                }
            }
            cfg = try BridgeConfiguration.resolve(
                flags: flags, environment: ProcessInfo.processInfo.environment, fileContents: fileText)
        } catch let e as ConfigurationError {
            throw ValidationError(e.description)
        }

        let level = Logger.Level(rawValue: cfg.logLevel) ?? .info
        let json = cfg.logFormat == "json"
        LoggingSystem.bootstrap { label in
            var h: any LogHandler = json ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        let logger = Logger(label: "wabridge")

        try FileManager.default.createDirectory(
            atPath: cfg.dataDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])

        let amqp: AMQPConfiguration
        do {
            amqp = try cfg.amqpConfiguration()
        } catch {
            throw ValidationError(error.description)
        }
        let topology = cfg.topology
        let broker = BrokerService(configuration: amqp, topology: topology, logger: Logger(label: "wabridge.amqp"))

        let store: BridgeStore
        let devices: DeviceManager
        let deviceConfiguration: DeviceManager.Configuration
        let admin: AdminHTTPService
        let publisher: EventPublisher
        do {
            // One socket per device and three descriptors per open SQLite database: the soft
            // limit (often 1,024) goes up to the hard one before anything opens, as Go's runtime does.
            Self.raiseFileLimit()
            let storeConfiguration = try BridgeStore.Configuration.fromEnvironment(
                dataDirectory: URL(fileURLWithPath: cfg.dataDir), environment: ProcessInfo.processInfo.environment)
            if let url = cfg.databaseURL {
                // One PostgreSQL database for every device; media files stay in the data folder.
                store = try await BridgeStore.postgres(url: url, configuration: storeConfiguration,
                                                       logger: Logger(label: "wabridge.store"))
            } else {
                store = try BridgeStore(configuration: storeConfiguration)
            }
            let recorder = OutboxRecorder(store: store)
            deviceConfiguration = try cfg.deviceManagerConfiguration()
            devices = DeviceManager(store: store, configuration: deviceConfiguration,
                                    recorder: recorder, logger: Logger(label: "wabridge.devices"))
            publisher = EventPublisher(recorder: recorder, topology: topology, logger: Logger(label: "wabridge.events"),
                                       owned: devices.owned, connection: { await broker.connection() })
            admin = try AdminHTTPService(
                manager: devices, host: cfg.adminHost, port: cfg.adminPort,
                options: .init(token: cfg.adminToken), logger: Logger(label: "wabridge.admin"))
        } catch {
            throw ValidationError("\(error)")
        }

        logger.info("wabridge starting", metadata: [
            "amqp.endpoint": "\(amqp.redactedEndpoints)", "data_dir": "\(cfg.dataDir)",
            "store": "\(cfg.databaseURL == nil ? "sqlite" : "postgresql")",
            "admin": "\(cfg.adminHost):\(cfg.adminPort)",
        ])
        let commands = CommandService(
            connection: { await broker.connection() }, manager: devices, events: devices.recorder,
            topology: topology, settings: cfg.commandSettings(), logger: Logger(label: "wabridge.commands"))
        // Services start in this order and stop in reverse: broker first up, last down;
        // the admin HTTP stops first, then the control queue (other workers' requests are
        // returned by the broker from then on), then the ownership rounds (every device handed over
        // while its command consumer still runs), then the commands, then the devices (their last
        // events go to the outbox), then the event publisher (what it did not publish
        // stays for the next run), then the store.
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: broker), .init(service: StoreService(store: store)),
                           .init(service: publisher),
                           .init(service: DeviceService(manager: devices)), .init(service: commands),
                           .init(service: OwnershipService(manager: devices, settings: deviceConfiguration.ownership!,
                                                           logger: Logger(label: "wabridge.ownership"))),
                           .init(service: ControlService(
                               connection: { await broker.connection() }, manager: devices, topology: topology,
                               workerID: deviceConfiguration.ownership!.workerID,
                               timeout: .milliseconds(Int(cfg.controlTimeout * 1000)), logger: Logger(label: "wabridge.control"))),
                           .init(service: admin)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
        logger.info("wabridge stopped")
    }

    /// Sets the soft `RLIMIT_NOFILE` to the hard limit (a no-op when they are equal).
    static func raiseFileLimit() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }
}
