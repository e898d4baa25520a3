import AMQP
import Logging
import ServiceLifecycle
import Synchronization

/// Owns the worker's broker connection for the life of the process.
///
/// At start it connects, retrying with backoff while the broker is not
/// there yet (a worker started before its broker must not crash-loop),
/// declares the shared topology, and then holds the connection until
/// graceful shutdown, when it closes it after outstanding confirms.
/// Later services get the connection through `connection()`.
public final class BrokerService: Service, Sendable {
    private let configuration: AMQPConfiguration
    private let topology: BridgeTopology
    private let logger: Logger
    private let state = Mutex<State>(State())

    private struct State {
        var connection: AMQPConnection?
        var waiters: [CheckedContinuation<AMQPConnection?, Never>] = []
        var stopped = false
    }

    public init(configuration: AMQPConfiguration, topology: BridgeTopology, logger: Logger) {
        self.configuration = configuration
        self.topology = topology
        self.logger = logger
    }

    /// The live connection, waiting until the first connect succeeded;
    /// nil once the service stopped.
    public func connection() async -> AMQPConnection? {
        await withCheckedContinuation { cont in
            let ready = state.withLock { s -> (Bool, AMQPConnection?) in
                if s.connection != nil || s.stopped { return (true, s.connection) }
                s.waiters.append(cont)
                return (false, nil)
            }
            if ready.0 { cont.resume(returning: ready.1) }
        }
    }

    public func run() async throws {
        defer { publish(nil, stopped: true) }
        var attempt = 0
        var conn: AMQPConnection?
        while conn == nil {
            do {
                let c = try await AMQPConnection.connect(configuration, logger: logger)
                try await topology.declare(on: c)
                conn = c
            } catch {
                attempt += 1
                guard error.isRetryable || error.code == .connectFailed else {
                    logger.critical("broker refused the worker", metadata: ["amqp.error": "\(error.code)", "amqp.reason": "\(error.message)"])
                    throw error
                }
                let delay = configuration.reconnect.delay(attempt: attempt, random: Double.random(in: 0..<1))
                logger.warning("broker not reachable; retrying", metadata: [
                    "amqp.error": "\(error.code)", "amqp.attempt": "\(attempt)", "amqp.delay_ms": "\(delay.components.seconds * 1000 + delay.components.attoseconds / 1_000_000_000_000_000)",
                ])
                do {
                    try await cancelWhenGracefulShutdown { try await Task.sleep(for: delay) }
                } catch {
                    return  // shutdown while waiting for the broker
                }
                if Task.isShuttingDownGracefully { return }
            }
        }
        guard let conn else { return }
        publish(conn, stopped: false)
        logger.info("broker ready", metadata: ["amqp.endpoint": "\(configuration.redactedEndpoints)"])
        try? await gracefulShutdown()
        logger.info("closing broker connection")
        await conn.close()
    }

    private func publish(_ connection: AMQPConnection?, stopped: Bool) {
        let waiters = state.withLock { s -> [CheckedContinuation<AMQPConnection?, Never>] in
            if let connection { s.connection = connection }
            if stopped {
                s.stopped = true
                s.connection = nil
            }
            let w = s.waiters
            s.waiters = []
            return w
        }
        for w in waiters { w.resume(returning: connection) }
    }
}
