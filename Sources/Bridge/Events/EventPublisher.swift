import AMQP
import BridgeStore
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Drains the outboxes to `<p>.events` with publisher confirms (contract,
/// "Events"). One lane per outbox (the registry's and each device's), so a
/// device's backlog never holds up another's. A lane publishes its oldest
/// events as a window of up to `window` unconfirmed publishes, deletes the
/// confirmed prefix, and repeats; a failed publish (broker down, nack) keeps
/// that event and everything after it, and the lane retries with backoff, so
/// nothing is dropped or reordered. An event confirmed after one that failed
/// is published again on the retry (same id): order wins over a duplicate.
/// At start every outbox is drained of what a previous run left.
///
/// Written by hand: no library drains an SQLite outbox to RabbitMQ.
public final class EventPublisher: Service, Sendable {
    public struct Configuration: Sendable {
        /// Unconfirmed publishes per lane at once.
        public var window: Int
        public var initialBackoff: Duration
        public var maxBackoff: Duration
        public init(window: Int = 128, initialBackoff: Duration = .milliseconds(100), maxBackoff: Duration = .seconds(5)) {
            self.window = window
            self.initialBackoff = initialBackoff
            self.maxBackoff = maxBackoff
        }
    }

    public typealias ConnectionProvider = @Sendable () async -> AMQPConnection?

    private let recorder: OutboxRecorder
    private let topology: BridgeTopology
    private let connection: ConnectionProvider
    private let configuration: Configuration
    private let logger: Logger
    /// Workers sharing a store: only the outboxes of devices this worker owns are drained
    /// here (and the registry's only by the worker chosen for it), so two workers never
    /// publish one outbox. nil: every outbox.
    private let owned: OwnedDevices?

    /// `connection` returns the live broker connection (waiting for the first
    /// connect), or nil once there will be none (the publisher then stops).
    public init(recorder: OutboxRecorder, topology: BridgeTopology, configuration: Configuration = Configuration(),
                logger: Logger = Logger(label: "wabridge.events"), owned: OwnedDevices? = nil,
                connection: @escaping ConnectionProvider) {
        self.recorder = recorder
        self.owned = owned
        self.topology = topology
        self.connection = connection
        self.configuration = configuration
        self.logger = logger
    }

    private var store: BridgeStore { recorder.store }

    public func run() async throws {
        await cancelWhenGracefulShutdown { await self.drainForever() }
    }

    /// Runs the lanes until cancelled.
    func drainForever() async {
        let wakes = recorder.wakeups.listen()
        defer { recorder.wakeups.stopListening() }
        await withDiscardingTaskGroup { group in
            var lanes: [OutboxKey: AsyncStream<Void>.Continuation] = [:]
            func startLane(_ key: OutboxKey) {
                let (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
                lanes[key] = continuation
                group.addTask { await self.lane(key, wakes: stream) }
            }
            startLane(.registry)
            for d in (try? await store.listDevices()) ?? [] { startLane(.device(d.id)) }
            // A lane whose device was deleted ended; a wake for that key (the
            // device created again) starts a fresh one.
            for await key in wakes {
                if let lane = lanes[key] {
                    if case .terminated = lane.yield(()) { startLane(key) }
                } else {
                    startLane(key)
                }
            }
            group.cancelAll()
        }
    }

    /// The broker connection, or nil when the lane is cancelled first: a provider
    /// that waits for a first connect (the broker never came) must not hold up the
    /// shutdown. The waiting task ends with the provider (which answers nil when
    /// the broker service stops).
    private func liveConnection() async -> AMQPConnection? {
        if Task.isCancelled { return nil }
        let slot = Mutex<CheckedContinuation<AMQPConnection?, Never>?>(nil)
        let resume: @Sendable (AMQPConnection?) -> Void = { value in
            slot.withLock { s in
                s?.resume(returning: value)
                s = nil
            }
        }
        let provider = connection
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<AMQPConnection?, Never>) in
                slot.withLock { $0 = c }
                if Task.isCancelled { resume(nil); return }
                Task { resume(await provider()) }
            }
        } onCancel: {
            resume(nil)
        }
    }

    private func backoff(_ attempt: Int) -> Duration {
        let base = configuration.initialBackoff * Double(1 << min(attempt, 16))
        let capped = min(base, configuration.maxBackoff)
        return capped * Double.random(in: 0.8...1.2)
    }

    /// One outbox's lane: publish, delete confirmed, wait for news or retry.
    private func lane(_ key: OutboxKey, wakes: AsyncStream<Void>) async {
        var it = wakes.makeAsyncIterator()
        var failures = 0
        while !Task.isCancelled {
            let outcome: LaneStep
            switch key {
            case .registry: outcome = await registryStep()
            case .device(let id): outcome = await deviceStep(id)
            }
            switch outcome {
            case .published: failures = 0
            case .idle:
                failures = 0
                if await it.next() == nil { return }
            case .failed:
                failures += 1
                try? await Task.sleep(for: backoff(failures - 1))
            case .gone:
                return
            }
        }
    }

    private enum LaneStep { case published, idle, failed, gone }

    private func message(eventID: String, routingKey: String, payload: Data) -> AMQPOutgoingMessage {
        // Only the attributes the AMQP properties repeat; the document goes out as stored.
        let head = try? JSONDecoder().decode(EnvelopeHead.self, from: payload)
        let timestamp = head?.time.flatMap(CloudEvent.time(from:)).map { UInt64(max(0, $0.timeIntervalSince1970)) }
        let properties = AMQPProperties(
            contentType: "application/cloudevents+json", deliveryMode: .persistent,
            correlationID: head?.correlationid, messageID: eventID, timestamp: timestamp,
            type: head?.type, appID: "wabridge")
        return AMQPOutgoingMessage(exchange: topology.eventsExchange, routingKey: routingKey, body: Array(payload),
                                   properties: properties)
    }

    /// Publishes `messages` as one window; returns how many of the first ones were confirmed in a row.
    private func publish(_ messages: [AMQPOutgoingMessage], on conn: AMQPConnection) async -> Int {
        let results = await conn.publish(contentsOf: messages)
        let confirmed = results.prefix { $0 == nil }.count
        if confirmed < results.count, let e = results[confirmed] {
            logger.warning("events not confirmed; retrying", metadata: [
                "amqp.error": "\(e.code)", "confirmed": "\(confirmed)", "window": "\(results.count)",
            ])
        }
        return confirmed
    }

    private func deviceStep(_ id: DeviceID) async -> LaneStep {
        // Another worker's device: its owner drains it; the lane wakes when it becomes ours.
        if let owned, !owned.owns(id) { return .idle }
        // The connection first: a window, once begun, ends promptly (confirmed or failed).
        guard let conn = await liveConnection() else { return .gone }
        guard recorder.wakeups.beginWindow(id) else { return .gone }
        defer { recorder.wakeups.endWindow(id) }
        do {
            // device.created (and a re-created device's past) leave the registry outbox first.
            if try await store.registry.pendingEventCount(deviceID: id) > 0 { return .idle }
            let data = try await store.device(id).data
            let batch = try await data.peekEvents(limit: configuration.window)
            if batch.isEmpty { return .idle }
            let confirmed = await publish(batch.map { message(eventID: $0.eventID, routingKey: $0.routingKey, payload: $0.payload) },
                                          on: conn)
            if confirmed > 0 { try await data.deleteEvents(sequences: batch.prefix(confirmed).compactMap(\.sequence)) }
            return confirmed == batch.count ? .published : .failed
        } catch {
            // A deleted device: its remaining events moved to the registry outbox.
            if case .none = try? await store.registry.device(id) { return .gone }
            // A folder not there yet (the device is being created) or any other error: retry.
            if EventFactory.errorCode(error) == StoreError.Code.notFound.rawValue { return .failed }
            // The devices stop (and close their files) before the publisher: what is left waits
            // in the outbox for the next start. Not an error.
            if Task.isShuttingDownGracefully {
                logger.debug("outbox closed for shutdown; the rest goes at the next start", metadata: ["device": "\(id)"])
                return .gone
            }
            logger.error("outbox not readable", metadata: ["device": "\(id)", "code": "\(EventFactory.errorCode(error))"])
            return .failed
        }
    }

    private func registryStep() async -> LaneStep {
        if let owned, !owned.drainsRegistry { return .idle }
        do {
            let batch = try await store.registry.peekEvents(limit: configuration.window)
            if batch.isEmpty { return .idle }
            guard let conn = await liveConnection() else { return .gone }
            let confirmed = await publish(batch.map { message(eventID: $0.eventID, routingKey: $0.routingKey, payload: $0.payload) },
                                          on: conn)
            if confirmed > 0 {
                try await store.registry.deleteEvents(sequences: batch.prefix(confirmed).compactMap(\.sequence))
                // Device lanes waiting behind their registry events may go on.
                // (Only devices that exist: events of unknown routing keys must not grow the lanes.)
                for d in Set(batch.prefix(confirmed).map(\.deviceID)) {
                    if let id = try? DeviceID(d), (try? await store.registry.device(id)) != nil { recorder.wakeups.wake(.device(id)) }
                }
            }
            return confirmed == batch.count ? .published : .failed
        } catch {
            logger.error("registry outbox not readable", metadata: ["code": "\(EventFactory.errorCode(error))"])
            return .failed
        }
    }
}

/// The CloudEvents attributes `EventPublisher` copies into AMQP properties (decoding just
/// these skips building a `JSONValue` of the whole document for every publish).
private struct EnvelopeHead: Decodable {
    var time: String?
    var correlationid: String?
    var type: String?
}
