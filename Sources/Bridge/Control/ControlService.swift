import AMQP
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Carries admin requests between the workers of one store (docs/amqp.md, "Worker control
/// queues"). Only the worker holding a device's lease runs its client, so a QR login, a pairing
/// code, a logout, a reconnect or a delete asked of any other worker's admin HTTP is sent to the
/// owner's control queue `<p>.worker.<id>.control` and its answer returned as if it were local.
///
/// The queue is exclusive and auto-delete: it exists while the worker is connected, so the
/// broker returns a request for a stopped worker at once (`mandatory`), and a request nobody
/// answers within `timeout` (a frozen worker) ends in `OWNER_UNREACHABLE`. Requests carry the
/// same time as their message TTL, so one the owner did not pick up in time is dropped, not run
/// late. The same queue takes the replies to this worker's own requests (message type tells them
/// apart), matched by correlation id.
///
/// Written by hand: a small request/reply protocol over the AMQP client; RabbitMQ's direct
/// reply-to needs the publishing channel to consume too, which our connection does not share.
public final class ControlService: Service, Sendable {
    static let requestType = "wabridge.control.request"
    static let replyType = "wabridge.control.reply"
    /// Requests run at once at most; more are answered `UNAVAILABLE` (a QR login holds one for
    /// up to the QR wait).
    static let maxInFlight = 64

    private let connection: @Sendable () async -> AMQPConnection?
    private let manager: DeviceManager
    private let topology: BridgeTopology
    private let workerID: String
    private let timeout: Duration
    private let logger: Logger
    private let pending = PendingReplies()
    private let live = Mutex<AMQPConnection?>(nil)
    private let inFlight = Atomic<Int>(0)

    /// `timeout`: how long a forwarded request waits for the owner's answer (a QR login waits
    /// the QR time on top).
    public init(connection: @escaping @Sendable () async -> AMQPConnection?, manager: DeviceManager,
                topology: BridgeTopology, workerID: String, timeout: Duration = .seconds(15),
                logger: Logger = Logger(label: "wabridge.control")) {
        self.connection = connection
        self.manager = manager
        self.topology = topology
        self.workerID = workerID
        self.timeout = timeout
        var l = logger
        l[metadataKey: "worker"] = .string(workerID)
        self.logger = l
    }

    var queue: String { topology.controlQueue(workerID: workerID) }

    public func run() async throws {
        guard let conn = await connectionUnlessShutdown(connection) else { return }
        live.withLock { $0 = conn }
        await manager.setForwarder { [self] worker, request throws(DeviceError) in
            try await forward(request, to: worker)
        }
        defer { live.withLock { $0 = nil } }
        var attempt = 0
        while !Task.isShuttingDownGracefully {
            do {
                try await cancelWhenGracefulShutdown { try await self.serve(conn) }
                attempt = 0
            } catch {
                guard !Task.isShuttingDownGracefully else { break }
                attempt += 1
                logger.warning("control queue not consumed; retrying", metadata: ["error": "\(error)", "attempt": "\(attempt)"])
            }
            guard !Task.isShuttingDownGracefully else { break }
            let delay = min(Duration.seconds(attempt), .seconds(10))
            do { try await cancelWhenGracefulShutdown { try await Task.sleep(for: delay) } } catch { break }
        }
        await manager.setForwarder(nil)
        pending.failAll(DeviceError(.ownerUnreachable, "this worker is stopping; retry on another worker"))
        logger.info("control queue closed")
    }

    /// Declares the queue, consumes it until cancelled, answers requests concurrently.
    private func serve(_ conn: AMQPConnection) async throws {
        try await conn.declareQueue(AMQPQueueDeclaration(name: queue, durable: false, exclusive: true, autoDelete: true))
        let consumer = try await conn.consume(queue: queue, prefetch: UInt16(Self.maxInFlight), exclusive: true)
        logger.info("control queue consumed", metadata: ["queue": "\(queue)"])
        await withDiscardingTaskGroup { group in
            do {
                for try await d in consumer {
                    // Nothing to redeliver: a request is answered (or dropped) once; the queue
                    // goes with this worker.
                    try? d.ack()
                    if d.properties.type == Self.replyType {
                        receiveReply(d)
                    } else {
                        group.addTask { await self.answer(d, on: conn) }
                    }
                }
            } catch {
                logger.warning("control consumer ended", metadata: ["error": "\(error)"])
            }
        }
        try? await consumer.cancel()
    }

    // MARK: The owner's side

    private func answer(_ d: AMQPDelivery, on conn: AMQPConnection) async {
        guard let to = d.properties.replyTo, !to.isEmpty, let correlation = d.properties.correlationID else {
            logger.warning("control request without reply-to or correlation id dropped")
            return
        }
        let reply: ControlReply
        if inFlight.add(1, ordering: .relaxed).newValue > Self.maxInFlight {
            reply = ControlReply(DeviceError(.unavailable, "worker \(workerID) is busy with \(Self.maxInFlight) admin requests; retry"))
        } else if let request = try? JSONDecoder().decode(ControlRequest.self, from: Data(d.body)) {
            logger.info("control request", metadata: ["op": "\(request.op.rawValue)", "device": "\(request.device)"])
            do { reply = try await manager.perform(request, forward: false) } catch { reply = ControlReply(error) }
        } else {
            reply = ControlReply(DeviceError(DeviceError.Code(rawValue: "INVALID_CONTROL_REQUEST"), "the control request does not parse"))
        }
        inFlight.subtract(1, ordering: .relaxed)
        do {
            try await conn.publish(AMQPOutgoingMessage(
                exchange: "", routingKey: to, body: Array(try JSONEncoder().encode(reply)),
                properties: AMQPProperties(contentType: "application/json", deliveryMode: .transient,
                                           correlationID: correlation, type: Self.replyType)))
        } catch {
            // The asking worker has gone or timed out; it told its caller so.
            logger.warning("control reply not delivered", metadata: ["error": "\(error)"])
        }
    }

    // MARK: The asking side

    private func receiveReply(_ d: AMQPDelivery) {
        guard let correlation = d.properties.correlationID else { return }
        guard let reply = try? JSONDecoder().decode(ControlReply.self, from: Data(d.body)) else {
            pending.resume(correlation, .failure(DeviceError(.ownerUnreachable, "the owner's reply does not parse")))
            return
        }
        pending.resume(correlation, .success(reply))
    }

    /// Sends `request` to `worker`'s control queue and waits for its reply.
    func forward(_ request: ControlRequest, to worker: String) async throws(DeviceError) -> ControlReply {
        guard let conn = live.withLock({ $0 }) else {
            throw DeviceError(.ownerUnreachable, "device \(request.device) is run by worker \(worker); this worker is not connected to the broker")
        }
        let wait = request.op == .qrLogin ? timeout + manager.configuration.qrTimeout : timeout
        let correlation = UUID().uuidString
        let body: [UInt8]
        do { body = Array(try JSONEncoder().encode(request)) } catch {
            throw DeviceError(.unavailable, "the request could not be encoded")
        }
        let message = AMQPOutgoingMessage(
            exchange: "", routingKey: topology.controlQueue(workerID: worker), body: body,
            properties: AMQPProperties(contentType: "application/json", deliveryMode: .transient, correlationID: correlation,
                                       replyTo: queue, expiration: "\(Int64(wait.timeInterval * 1000))", type: Self.requestType),
            mandatory: true)
        let log = logger
        return try await pending.wait(correlation, timeout: wait, timedOut: DeviceError(
            .ownerUnreachable, "worker \(worker), which runs device \(request.device), did not answer within \(wait); "
                + "the request may still be carried out: look at the device, retry once it has moved (within the lease time)")
        ) {
            do throws(AMQPError) {
                try await conn.publish(message)
                return nil
            } catch {
                log.info("control request not delivered", metadata: ["to": "\(worker)", "error": "\(error.code)"])
                if error.code == .publishReturned {
                    return DeviceError(.ownerUnreachable, "worker \(worker), which runs device \(request.device), is not connected to the broker; "
                        + "retry once the device has moved (within the lease time)")
                }
                return DeviceError(.ownerUnreachable, "the request for worker \(worker) was not sent: \(error.code)")
            }
        }
    }
}

/// Replies awaited by correlation id; each waiter is resumed once (reply, send failure or timeout).
final class PendingReplies: Sendable {
    private struct Entry {
        let continuation: CheckedContinuation<Result<ControlReply, DeviceError>, Never>
        let timer: Task<Void, Never>
    }
    private let entries = Mutex<[String: Entry]>([:])

    /// Registers the waiter, then runs `send` (a non-nil error ends the wait with it).
    func wait(_ id: String, timeout: Duration, timedOut: DeviceError,
              send: @escaping @Sendable () async -> DeviceError?) async throws(DeviceError) -> ControlReply {
        let result = await withCheckedContinuation { (cont: CheckedContinuation<Result<ControlReply, DeviceError>, Never>) in
            let timer = Task { [weak self] in
                try? await Task.sleep(for: timeout)
                self?.resume(id, .failure(timedOut))
            }
            entries.withLock { $0[id] = Entry(continuation: cont, timer: timer) }
            Task { [weak self] in
                if let e = await send() { self?.resume(id, .failure(e)) }
            }
        }
        return try result.get()
    }

    func resume(_ id: String, _ result: Result<ControlReply, DeviceError>) {
        guard let entry = entries.withLock({ $0.removeValue(forKey: id) }) else { return }
        entry.timer.cancel()
        entry.continuation.resume(returning: result)
    }

    func failAll(_ error: DeviceError) {
        let all = entries.withLock { e -> [Entry] in
            defer { e.removeAll() }
            return Array(e.values)
        }
        for entry in all {
            entry.timer.cancel()
            entry.continuation.resume(returning: .failure(error))
        }
    }
}
