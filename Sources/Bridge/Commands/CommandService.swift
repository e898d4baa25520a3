import AMQP
import BridgeStore
import Logging
import ServiceLifecycle
import Synchronization

/// Runs the command path on the worker's broker connection: one consumer per
/// device queue (declared for every device at start, and when a device is
/// created at run time; deleted with the device), plus one on
/// `<p>.commands.unrouted`. Each consumer hands what has arrived to
/// `CommandProcessor` in queue order; a device's sends go out in pipelined
/// runs, still in that order (CommandProcessor+Pipeline.swift).
///
/// The AMQP client reconnects and resubscribes by itself; a consumer the
/// broker cancels (its queue deleted under it) is declared and started again
/// after a pause.
public final class CommandService: Service, Sendable {
    private let connection: @Sendable () async -> AMQPConnection?
    private let manager: DeviceManager
    private let events: any EventRecording
    private let topology: BridgeTopology
    private let settings: CommandSettings
    private let logger: Logger

    /// `connection`: `BrokerService.connection` (waits for the first connect; nil once stopped).
    public init(connection: @escaping @Sendable () async -> AMQPConnection?, manager: DeviceManager,
                events: any EventRecording, topology: BridgeTopology, settings: CommandSettings = CommandSettings(),
                logger: Logger = Logger(label: "wabridge.commands")) {
        self.connection = connection
        self.manager = manager
        self.events = events
        self.topology = topology
        self.settings = settings
        self.logger = logger
    }

    public func run() async throws {
        // The broker may never come (it stops last, after us): a shutdown must not wait for it.
        guard let conn = await connectionUnlessShutdown(connection) else { return }
        // The link may drop between connecting and declaring: retry (the connection
        // recovers by itself) rather than fail the worker; only a refusal stops it.
        var attempt = 0
        while true {
            do {
                try await topology.declare(on: conn)
                break
            } catch {
                attempt += 1
                guard error.isRetryable || error.code == .connectionLost else { throw error }
                logger.warning("topology not declared; retrying", metadata: ["amqp.error": "\(error.code)"])
                let delay = min(Duration.seconds(attempt), .seconds(10))
                do { try await cancelWhenGracefulShutdown { try await Task.sleep(for: delay) } } catch { return }
            }
        }
        // The device map is loaded by DeviceService, which starts before us.
        while !(await manager.isReady) {
            if Task.isShuttingDownGracefully { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        let processor = CommandProcessor(connection: conn, manager: manager, events: events, topology: topology,
                                         settings: settings, logger: logger)
        let workers = CommandWorkers(processor: processor, logger: logger)
        await manager.addLifecycleObserver { [manager] id, change in
            switch change {
            // A device runs here only while this worker owns it (every device, with one worker).
            case .created: if await manager.isActive(id) { await workers.start(id) }
            case .activated: await workers.start(id)
            case .deleting, .deactivating: await workers.stop(id)
            case .deleted: await workers.remove(id)
            }
        }
        for id in await manager.ownedDeviceIDs { await workers.start(id) }
        await workers.startUnrouted()
        let running = await workers.count
        logger.info("command consumers running", metadata: ["devices": "\(running)"])
        try? await gracefulShutdown()
        await workers.stopAll()
        logger.info("command consumers stopped")
    }
}

/// The broker connection, or nil when graceful shutdown (or cancellation) comes first
/// (services that start before the broker has connected).
func connectionUnlessShutdown(_ connection: @escaping @Sendable () async -> AMQPConnection?) async -> AMQPConnection? {
    let first = FirstAnswer()
    // Unstructured tasks inherit the service's graceful-shutdown context.
    let fromBroker = Task { @Sendable in first.answer(await connection()) }
    let onShutdown = Task { @Sendable in
        try? await gracefulShutdown()
        first.answer(nil)
    }
    let c = await withTaskCancellationHandler {
        await first.value()
    } onCancel: {
        first.answer(nil)
    }
    if c == nil { fromBroker.cancel() }
    onShutdown.cancel()
    return c
}

/// The first of several answers; later ones are dropped.
private final class FirstAnswer: Sendable {
    private struct State {
        var waiter: CheckedContinuation<AMQPConnection?, Never>?
        var answered = false
        var value: AMQPConnection?
    }
    private let state = Mutex(State())

    func answer(_ c: AMQPConnection?) {
        let waiter = state.withLock { s -> CheckedContinuation<AMQPConnection?, Never>? in
            guard !s.answered else { return nil }
            s.answered = true
            s.value = c
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(returning: c)
    }

    func value() async -> AMQPConnection? {
        await withCheckedContinuation { cont in
            let ready = state.withLock { s -> (Bool, AMQPConnection?) in
                if s.answered { return (true, s.value) }
                s.waiter = cont
                return (false, nil)
            }
            if ready.0 { cont.resume(returning: ready.1) }
        }
    }
}

/// The one owner of the running consumers, by device.
actor CommandWorkers {
    private let processor: CommandProcessor
    private let logger: Logger
    private var tasks: [DeviceID: Task<Void, Never>] = [:]
    private var starting: Set<DeviceID> = []
    private var removedWhileStarting: Set<DeviceID> = []
    private var unrouted: Task<Void, Never>?
    private var stopped = false

    init(processor: CommandProcessor, logger: Logger) {
        self.processor = processor
        self.logger = logger
    }

    var count: Int { tasks.count }

    /// Declares the device's queue (so commands published from now on are kept)
    /// and starts its consumer. A declaration that fails here is retried by the consumer loop.
    func start(_ id: DeviceID) async {
        guard !stopped, tasks[id] == nil, !starting.contains(id) else { return }
        // Marked before the first await: a second start (observer and start-up listing
        // racing) must not make a second consumer.
        starting.insert(id)
        let p = processor
        do { try await p.topology.declareDeviceQueue(deviceID: id.rawValue, on: p.connection) } catch {
            logger.warning("device queue not declared yet; retrying", metadata: ["device": "\(id)", "amqp.error": "\(error.code)"])
        }
        starting.remove(id)
        guard !stopped, !removedWhileStarting.contains(id) else {
            // Deleted meanwhile: our declaration may have landed after its queue was deleted.
            if removedWhileStarting.remove(id) != nil {
                try? await p.topology.deleteDeviceQueue(deviceID: id.rawValue, on: p.connection)
            }
            return
        }
        let logger = logger
        tasks[id] = Task {
            let pacer = Pacer(rate: p.settings.sendRate, burst: p.settings.sendBurst)
            await Self.consume(queue: p.topology.commandQueue(deviceID: id.rawValue), processor: p, logger: logger,
                               declare: { try await p.topology.declareDeviceQueue(deviceID: id.rawValue, on: p.connection) },
                               handle: { ds throws(CancellationError) in try await p.handle(batch: ds, device: id, pacer: pacer) })
        }
    }

    /// Stops the device's consumer (sends already written are recorded first); its queue stays.
    func stop(_ id: DeviceID) async {
        if let t = tasks.removeValue(forKey: id) {
            t.cancel()
            await t.value
        }
    }

    /// Stops the device's consumer and deletes its queue.
    func remove(_ id: DeviceID) async {
        if starting.contains(id) { removedWhileStarting.insert(id) }
        if let t = tasks.removeValue(forKey: id) {
            t.cancel()
            await t.value
        }
        guard !stopped else { return }
        do { try await processor.topology.deleteDeviceQueue(deviceID: id.rawValue, on: processor.connection) } catch {
            logger.warning("device queue not deleted", metadata: ["device": "\(id)", "amqp.error": "\(error.code)"])
        }
    }

    func startUnrouted() {
        guard !stopped, unrouted == nil else { return }
        let p = processor, logger = logger
        unrouted = Task {
            await Self.consume(queue: p.topology.unroutedQueue, processor: p, logger: logger, prefetch: 1,
                               declare: { try await p.topology.declare(on: p.connection) },
                               handle: { ds throws(CancellationError) in
                                   for d in ds where try await p.handleUnrouted(d) == .requeued { return .requeued }
                                   return .acked
                               })
        }
    }

    func stopAll() async {
        stopped = true
        let all = Array(tasks.values) + [unrouted].compactMap { $0 }
        tasks = [:]
        unrouted = nil
        for t in all { t.cancel() }
        for t in all { await t.value }
    }

    /// Consumes `queue` until cancelled, handing over what has arrived in batches
    /// (in order); starts over (declare, consume) when the consumer ends under it.
    private static func consume(
        queue: String, processor p: CommandProcessor, logger: Logger, prefetch: UInt16? = nil,
        declare: @Sendable () async throws -> Void,
        handle: ([AMQPDelivery]) async throws(CancellationError) -> CommandProcessor.Outcome
    ) async {
        var attempt = 0
        while !Task.isCancelled {
            var consumer: AMQPConsumer?
            var pump: Task<Void, Never>?
            do {
                try await declare()
                let c = try await p.connection.consume(queue: queue, prefetch: prefetch ?? p.settings.prefetch)
                consumer = c
                attempt = 0
                let batches = BatchBuffer<AMQPDelivery>()
                pump = Task {
                    do {
                        for try await d in c { batches.push(d) }
                        batches.finish(nil)
                    } catch {
                        batches.finish(error)
                    }
                }
                while let batch = try await batches.next(max: Int(prefetch ?? p.settings.prefetch)) {
                    // A delivery handed back must not be overtaken by those already
                    // prefetched behind it: leave, and the cancel below returns them all to
                    // the queue in order before consuming again.
                    if try await handle(batch) == .requeued { break }
                }
            } catch let e as AMQPError where e.code == .queueTypeMismatch {
                // Declaring again cannot heal it: an operator must (docs/amqp.md, "RabbitMQ cluster").
                logger.error("command queue not consumed: it has another type", metadata: [
                    "queue": "\(queue)", "amqp.error": "\(e.code)", "amqp.reason": "\(e.message)",
                ])
                return
            } catch is CancellationError {
            } catch {
                logger.warning("command consumer ended; starting again", metadata: ["queue": "\(queue)", "error": "\(error)"])
            }
            try? await consumer?.cancel()
            pump?.cancel()
            if Task.isCancelled { return }
            attempt += 1
            try? await Task.sleep(for: min(p.settings.retryBackoff * attempt, .seconds(30)))
        }
    }
}
