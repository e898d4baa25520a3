import AMQP
import ArgumentParser
import Bridge
import Foundation

/// The broker settings of `send` and `events`: the same names and rules as
/// `wabridge serve` (`BridgeConfiguration`), TLS through the same
/// `WABRIDGE_AMQP_*` variables.
struct BrokerOptions: ParsableArguments {
    @Option(name: .customLong("amqp-url"), help: "Broker URL [WABRIDGE_AMQP_URL] (default amqp://guest:guest@127.0.0.1:5672/).")
    var amqpURL: String?
    @Option(name: [.customLong("prefix"), .customLong("topology-prefix")],
            help: "Exchange/queue name prefix [WABRIDGE_TOPOLOGY_PREFIX] (default wa).")
    var prefix: String?

    /// Only the broker settings are read from the environment, so a worker's
    /// unrelated settings in the same shell cannot make a helper fail.
    static let keys: Set<BridgeConfiguration.Key> = [
        .amqpURL, .amqpCAFile, .amqpCertFile, .amqpKeyFile, .amqpVerifyPeer, .amqpHeartbeat, .topologyPrefix,
        .queueType, .queueDeliveryLimit,
    ]

    func resolve(connectionName: String) throws(CLIError) -> (AMQPConfiguration, BridgeTopology) {
        var flags: [BridgeConfiguration.Key: String] = [.workerName: connectionName]
        flags[.amqpURL] = amqpURL
        flags[.topologyPrefix] = prefix
        let environment = ProcessInfo.processInfo.environment.filter { key, _ in
            BridgeConfiguration.Key(rawValue: key).map(Self.keys.contains) ?? false
        }
        do {
            let cfg = try BridgeConfiguration.resolve(flags: flags, environment: environment, fileContents: nil)
            return (try cfg.amqpConfiguration(), cfg.topology)
        } catch let e as ConfigurationError {
            throw CLIError(e.code.rawValue, e.message)
        } catch let e as AMQPError {
            throw CLIError(e.code.rawValue, e.message)
        } catch {
            throw CLIError("config.invalid_value", "\(error)")
        }
    }

    func connect(connectionName: String) async throws(CLIError) -> (AMQPConnection, BridgeTopology) {
        let (configuration, topology) = try resolve(connectionName: connectionName)
        do {
            return (try await AMQPConnection.connect(configuration), topology)
        } catch {
            throw CLIError(error.code.rawValue, "\(configuration.redactedEndpoints): \(error.message)", exit: .unreachable)
        }
    }
}

extension CLIError {
    /// A broker operation's failure, with the AMQP module's code.
    init(_ e: AMQPError, _ what: String) {
        self.init(e.code.rawValue, "\(what): \(e.message)", exit: e.code == .connectionLost || e.code == .connectionClosed ? .unreachable : .refused)
    }
}
