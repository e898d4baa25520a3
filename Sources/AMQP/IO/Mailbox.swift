import CRabbitMQ
import Glibc
import Synchronization

typealias Reply<T: Sendable> = @Sendable (Result<T, AMQPError>) -> Void

/// A publish waiting to be written, and later confirmed.
struct PublishRequest: Sendable {
    let message: AMQPOutgoingMessage
    let reply: Reply<Void>
}

/// What a consumer asked for; the loop keeps its own mutable state beside it.
struct ConsumerSpec: Sendable {
    let id: UInt64
    let queue: String
    let prefetch: UInt16
    let requestedTag: String
    let exclusive: Bool
    let arguments: AMQPTable
    let continuation: AsyncThrowingStream<AMQPDelivery, any Error>.Continuation
}

/// Work handed from any thread to the connection's own thread.
enum Command: Sendable {
    case declareExchange(AMQPExchangeDeclaration, passive: Bool, Reply<Void>)
    case deleteExchange(String, ifUnused: Bool, Reply<Void>)
    case declareQueue(AMQPQueueDeclaration, passive: Bool, Reply<AMQPQueueDeclareResult>)
    case deleteQueue(String, ifUnused: Bool, ifEmpty: Bool, Reply<UInt32>)
    case purgeQueue(String, Reply<UInt32>)
    case bind(AMQPBinding, Reply<Void>)
    case unbind(AMQPBinding, Reply<Void>)
    case publish([PublishRequest])
    case consume(ConsumerSpec, Reply<String>)
    case cancel(consumerID: UInt64, Reply<Void>)
    /// Fire-and-forget: basic.ack/nack/reject have no broker reply.
    case settle(generation: UInt64, channel: UInt16, consumer: UInt64, tag: UInt64, kind: SettleKind)
    case close(Reply<Void>)
}

/// The only door into a connection's thread: a locked queue plus an
/// eventfd that wakes the thread from `poll`. rabbitmq-c is not
/// thread-safe, so nothing else ever touches the C connection.
final class Mailbox: Sendable {
    private let queue = Mutex<(commands: [Command], closed: Bool, signalled: Bool)>(([], false, false))
    let wakeFD: Int32

    /// Consumers subscribed now, by connection generation and channel. The
    /// loop keeps it current; a delivery checks it before settling, so a
    /// settlement after a reconnect, cancel or channel loss fails at once.
    let liveConsumers = Mutex<Set<ConsumerKey>>([])

    struct ConsumerKey: Hashable, Sendable {
        let generation: UInt64
        let channel: UInt16
        let consumer: UInt64
    }

    init() throws(AMQPError) {
        let fd = wab_wakeup_fd()
        guard fd >= 0 else {
            throw AMQPError(code: .library, message: "eventfd failed: errno \(errno)")
        }
        wakeFD = fd
    }

    deinit { Glibc.close(wakeFD) }

    /// Queues a command. After the loop has exited, the command is answered
    /// at once with `amqp.connection_closed` instead of waiting forever.
    func post(_ command: Command) {
        let (accepted, wake) = queue.withLock { state -> (Bool, Bool) in
            if state.closed { return (false, false) }
            state.commands.append(command)
            // The thread drains the whole queue per wake-up: one signal is
            // enough until it does.
            let wake = !state.signalled
            state.signalled = true
            return (true, wake)
        }
        if accepted && wake {
            var one: UInt64 = 1
            _ = Glibc.write(wakeFD, &one, 8)
        } else if !accepted {
            Self.refuse(command, AMQPError(code: .connectionClosed, message: "connection is closed"))
        }
    }

    func drain() -> [Command] {
        var buf: UInt64 = 0
        _ = Glibc.read(wakeFD, &buf, 8)
        return queue.withLock { state in
            let out = state.commands
            state.commands.removeAll(keepingCapacity: true)
            state.signalled = false
            return out
        }
    }

    /// True when everything queued is a settlement and there are fewer than
    /// `limit`: the thread may wait a moment so that more acks arrive
    /// before it wakes again (one wake-up per ack would halve consume
    /// throughput).
    func onlyFewSettlements(limit: Int) -> Bool {
        queue.withLock { state in
            state.commands.count < limit && state.commands.allSatisfy {
                if case .settle = $0 { return true } else { return false }
            }
        }
    }

    /// Marks the mailbox closed and returns what was still queued.
    func closeAndDrain() -> [Command] {
        queue.withLock { state in
            state.closed = true
            let out = state.commands
            state.commands = []
            return out
        }
    }

    static func refuse(_ command: Command, _ error: AMQPError) {
        switch command {
        case .declareExchange(_, _, let r): r(.failure(error))
        case .deleteExchange(_, _, let r): r(.failure(error))
        case .declareQueue(_, _, let r): r(.failure(error))
        case .deleteQueue(_, _, _, let r): r(.failure(error))
        case .purgeQueue(_, let r): r(.failure(error))
        case .bind(_, let r): r(.failure(error))
        case .unbind(_, let r): r(.failure(error))
        case .publish(let reqs): for p in reqs { p.reply(.failure(error)) }
        case .consume(let spec, let r):
            spec.continuation.finish(throwing: error)
            r(.failure(error))
        case .cancel(_, let r): r(.failure(error))
        case .settle: break
        case .close(let r): r(.success(()))
        }
    }
}

/// Fans connection events out to every subscriber.
final class EventHub: Sendable {
    private let state = Mutex<(next: Int, subscribers: [Int: AsyncStream<AMQPConnectionEvent>.Continuation], finished: Bool)>((0, [:], false))

    func subscribe() -> AsyncStream<AMQPConnectionEvent> {
        let (stream, continuation) = AsyncStream<AMQPConnectionEvent>.makeStream(bufferingPolicy: .bufferingNewest(256))
        let added = state.withLock { s -> Int? in
            if s.finished { return nil }
            let id = s.next
            s.next += 1
            s.subscribers[id] = continuation
            return id
        }
        if let id = added {
            continuation.onTermination = { [weak self] _ in
                _ = self?.state.withLock { $0.subscribers.removeValue(forKey: id) }
            }
        } else {
            continuation.yield(.closed)
            continuation.finish()
        }
        return stream
    }

    func emit(_ event: AMQPConnectionEvent) {
        let subs = state.withLock { Array($0.subscribers.values) }
        for c in subs { c.yield(event) }
    }

    func finish() {
        let subs = state.withLock { s -> [AsyncStream<AMQPConnectionEvent>.Continuation] in
            s.finished = true
            let out = Array(s.subscribers.values)
            s.subscribers = [:]
            return out
        }
        for c in subs { c.finish() }
    }
}
