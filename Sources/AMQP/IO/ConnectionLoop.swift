import CRabbitMQ
import Foundation
import Glibc
import Logging

/// AMQP method ids (class << 16 | method); rabbitmq-c's macros carry casts
/// Swift cannot import.
enum Method {
    static let connectionClose: UInt32 = 0x000A_0032
    static let connectionCloseOk: UInt32 = 0x000A_0033
    static let connectionBlocked: UInt32 = 0x000A_003C
    static let connectionUnblocked: UInt32 = 0x000A_003D
    static let channelClose: UInt32 = 0x0014_0028
    static let channelCloseOk: UInt32 = 0x0014_0029
    static let basicCancel: UInt32 = 0x003C_001E
    static let basicReturn: UInt32 = 0x003C_0032
    static let basicDeliver: UInt32 = 0x003C_003C
    static let basicAck: UInt32 = 0x003C_0050
    static let basicNack: UInt32 = 0x003C_0078
}

/// The thread that owns one rabbitmq-c connection.
///
/// rabbitmq-c is not thread-safe, so this object and everything it touches
/// live on one thread: it waits in `poll` on the socket and the mailbox's
/// eventfd, runs commands, reads frames (rabbitmq-c sends and checks
/// heartbeats while we read), and reconnects with backoff when the link
/// dies. Callers only ever see replies and stream elements.
final class ConnectionLoop {
    private let config: AMQPConfiguration
    private let mailbox: Mailbox
    private let events: EventHub
    private var logger: Logger

    private var conn: amqp_connection_state_t?
    private var generation: UInt64 = 0
    private var connected: Bool { conn != nil }

    // Channel 1 carries declarations and other RPCs; channel 2 publishes in
    // confirm mode; consumers share channels from 3 up, at most
    // `consumersPerChannel` each, so one connection carries many more
    // consumers than `channel_max`. Delivery tags are per channel: the
    // channel's state knows which consumer holds each unsettled one.
    private let controlChannel: UInt16 = 1
    private let publishChannel: UInt16 = 2
    private var controlOpen = false
    private var publishOpen = false
    private var channelMax: UInt16 = 2047
    private var freeChannels: [UInt16] = []
    private var nextChannel: UInt16 = 3

    private struct PendingPublish {
        let reply: Reply<Void>
        /// Kept only for mandatory publishes, to match a `basic.return`.
        let returnKey: ReturnKey?
        var returned: AMQPError?
    }
    private struct ReturnKey: Equatable {
        let exchange: String
        let routingKey: String
        let messageID: String?
        let body: [UInt8]
    }
    private var confirms = ConfirmTracker<PendingPublish>()
    private var mandatorySeqs: [UInt64] = []
    private var blocked = false
    private var held: [PublishRequest] = []

    private struct Consumer {
        var spec: ConsumerSpec
        var queue: String
        var tag: String
        var channel: UInt16?
    }
    /// One open consumer channel.
    private struct ConsumerChannel {
        /// Consumer tag → consumer id (tags are unique per channel).
        var consumers: [String: UInt64] = [:]
        var acks = AckCoalescer()
        /// Unsettled delivery tag → the consumer it went to.
        var owners: [UInt64: UInt64] = [:]
        /// The per-consumer prefetch (`basic.qos`, global=false) in force for
        /// the next `basic.consume`; nil before the first.
        var prefetch: UInt16?
    }
    private var consumers: [UInt64: Consumer] = [:]
    private var consumerChannels: [UInt16: ConsumerChannel] = [:]
    /// The channel new consumers go to while it has room.
    private var fillingChannel: UInt16?
    /// Consumers whose channel the broker closed because of a channel-mate:
    /// subscribed again on a fresh channel from the loop.
    private var orphans: [UInt64] = []
    /// Index into `config.endpoints` of the last broker that took us.
    private var endpointIndex = 0

    private struct Assembly {
        enum Kind {
            case deliver(consumerTag: String, deliveryTag: UInt64, redelivered: Bool, exchange: String, routingKey: String)
            case returned(replyCode: UInt16, replyText: String, exchange: String, routingKey: String)
        }
        let kind: Kind
        var properties = AMQPProperties()
        var expected: UInt64 = 0
        var body: [UInt8] = []
        var haveHeader = false
    }
    private var assemblies: [UInt16: Assembly] = [:]

    private var topology = TopologyRecorder()

    /// True while `establish` runs: a loss then is reported by its result,
    /// and the caller decides about the next attempt.
    private var establishing = false
    private var reconnectAttempt = 0
    private var nextReconnectAt: ContinuousClock.Instant?
    private var closing = false
    private var closeDeadline: ContinuousClock.Instant?
    private var closeReplies: [Reply<Void>] = []
    private var finished = false

    init(config: AMQPConfiguration, mailbox: Mailbox, events: EventHub, logger: Logger) {
        self.config = config
        self.mailbox = mailbox
        self.events = events
        self.logger = logger
        self.logger[metadataKey: "amqp.endpoint"] = "\(config.endpoints[0].redacted)"
    }

    // MARK: Thread entry

    func run(firstConnect: Reply<Void>) {
        switch establish() {
        case .success:
            firstConnect(.success(()))
        case .failure(let e):
            for c in mailbox.closeAndDrain() { Mailbox.refuse(c, e) }
            events.finish()
            firstConnect(.failure(e))
            return
        }
        while !finished {
            waitForWork()
            for command in mailbox.drain() {
                if case .settle = command {} else { flushAcks() }
                handle(command)
            }
            flushAcks()
            if connected { pumpFrames() }
            if connected && !orphans.isEmpty { resubscribeOrphans() }
            if !connected && !closing, let at = nextReconnectAt, ContinuousClock.now >= at {
                attemptReconnect()
            }
            if closing { maybeFinishClose() }
        }
    }

    private func waitForWork() {
        var timeoutMs: Int32 = 1000
        if let c = conn, amqp_frames_enqueued(c) != 0 || amqp_data_in_buffer(c) != 0 {
            timeoutMs = 0
        }
        // rabbitmq-c sends heartbeats only while we call into it; wake well
        // within the interval.
        if config.heartbeat > 0 { timeoutMs = min(timeoutMs, Int32(config.heartbeat) * 250) }
        if !connected, let at = nextReconnectAt {
            let left = (at - ContinuousClock.now).milliseconds
            timeoutMs = min(timeoutMs, Int32(max(0, left)))
        }
        if closing { timeoutMs = min(timeoutMs, 50) }
        var fds = [pollfd(fd: mailbox.wakeFD, events: Int16(POLLIN), revents: 0)]
        if let c = conn { fds.append(pollfd(fd: amqp_get_sockfd(c), events: Int16(POLLIN), revents: 0)) }
        _ = poll(&fds, nfds_t(fds.count), timeoutMs)
        // Woken only by acks: give the consumer up to a millisecond to add
        // more (it does not signal again until we drain), still serving the
        // socket at once if the broker sends something.
        if fds.count == 2, fds[0].revents & Int16(POLLIN) != 0, fds[1].revents == 0,
            mailbox.onlyFewSettlements(limit: 256)
        {
            var sock = [fds[1]]
            _ = poll(&sock, 1, 1)
        }
    }

    // MARK: Connecting

    /// One round over the endpoints, from the last good one.
    private func establish() -> Result<Void, AMQPError> {
        let n = config.endpoints.count
        var failures: [(Endpoint, AMQPError)] = []
        for i in 0..<n {
            let index = (endpointIndex + i) % n
            let ep = config.endpoints[index]
            logger[metadataKey: "amqp.endpoint"] = "\(ep.redacted)"
            switch establish(on: ep) {
            case .success:
                endpointIndex = index
                return .success(())
            case .failure(let e):
                failures.append((ep, e))
                if n > 1 {
                    logger.warning("amqp broker not reachable; trying the next", metadata: ["amqp.error": "\(e.code)", "amqp.reason": "\(e.message)"])
                }
            }
            if closing { break }
        }
        guard failures.count > 1 else { return .failure(failures[0].1) }
        // A broker that is only down keeps the round retryable; the message
        // names every endpoint's failure.
        var pick = failures.last { $0.1.isRetryable || $0.1.code == .connectFailed }?.1 ?? failures[failures.count - 1].1
        pick.message = "no broker of \(failures.count) took the connection: "
            + failures.map { "\($0.0.redacted): \($0.1.message)" }.joined(separator: "; ")
        return .failure(pick)
    }

    typealias Endpoint = AMQPConfiguration.Endpoint

    private func establish(on ep: Endpoint) -> Result<Void, AMQPError> {
        establishing = true
        defer { establishing = false }
        guard let c = amqp_new_connection() else {
            return .failure(AMQPError(code: .library, message: "amqp_new_connection failed"))
        }
        let socket: OpaquePointer?
        if ep.tls {
            socket = amqp_ssl_socket_new(c)
            guard let socket else {
                amqp_destroy_connection(c)
                return .failure(AMQPError(code: .tlsFailed, message: "could not create a TLS socket"))
            }
            let tls = config.tls
            let ca = tls.caFile ?? (FileManager.default.fileExists(atPath: "/etc/ssl/certs/ca-certificates.crt") ? "/etc/ssl/certs/ca-certificates.crt" : nil)
            if let ca, amqp_ssl_socket_set_cacert(socket, ca) != AMQP_STATUS_OK.rawValue {
                amqp_destroy_connection(c)
                return .failure(AMQPError(code: .tlsFailed, message: "cannot load CA file \(ca)"))
            }
            if let cert = tls.certFile, let key = tls.keyFile,
                amqp_ssl_socket_set_key(socket, cert, key) != AMQP_STATUS_OK.rawValue
            {
                amqp_destroy_connection(c)
                return .failure(AMQPError(code: .tlsFailed, message: "cannot load client certificate \(cert) / key"))
            }
            amqp_ssl_socket_set_verify_peer(socket, tls.verifyPeer ? 1 : 0)
            amqp_ssl_socket_set_verify_hostname(socket, tls.verifyHostname ? 1 : 0)
        } else {
            socket = amqp_tcp_socket_new(c)
            guard socket != nil else {
                amqp_destroy_connection(c)
                return .failure(AMQPError(code: .library, message: "could not create a TCP socket"))
            }
        }
        var tv = config.connectTimeout.timeval
        let rc = amqp_socket_open_noblock(socket, ep.host, Int32(ep.port), &tv)
        if rc != AMQP_STATUS_OK.rawValue {
            amqp_destroy_connection(c)
            let text = String(cString: amqp_error_string2(rc))
            let isTLS = (rc <= -0x0200 && rc > -0x0300)  // AMQP_STATUS_SSL_* live in -0x02xx
            return .failure(AMQPError(
                code: isTLS ? .tlsFailed : .connectFailed,
                message: "cannot connect to \(ep.host):\(ep.port): \(text)", isRetryable: !isTLS))
        }
        var rpcTV = config.rpcTimeout.timeval
        amqp_set_rpc_timeout(c, &rpcTV)
        var handshakeTV = config.connectTimeout.timeval
        amqp_set_handshake_timeout(c, &handshakeTV)

        let arena = CArena()
        let capabilities: AMQPTable = [
            "publisher_confirms": true, "exchange_exchange_bindings": true, "basic.nack": true,
            "consumer_cancel_notify": true, "connection.blocked": true,
            "authentication_failure_close": true, "per_consumer_qos": true,
        ]
        var props = arena.table([
            "connection_name": .string(config.connectionName),
            "product": "wabridge",
            "capabilities": .table(capabilities),
        ])
        let reply: amqp_rpc_reply_t
        if ep.tls && config.tls.certFile != nil && ep.user.isEmpty {
            reply = wab_amqp_login_external(c, ep.vhost, Int32(channelMax), config.frameMax, Int32(config.heartbeat), &props, "")
        } else {
            reply = wab_amqp_login_plain(
                c, ep.vhost, Int32(channelMax), config.frameMax, Int32(config.heartbeat), &props, ep.user, ep.password)
        }
        if reply.reply_type != AMQP_RESPONSE_NORMAL {
            var err = replyError(reply, channel: 0)
            if err.code == .accessRefused { err.message = "login refused for user \(ep.user) on vhost \(ep.vhost): \(err.message)" }
            if reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION, reply.library_error == AMQP_STATUS_CONNECTION_CLOSED.rawValue {
                // Without authentication_failure_close a broker just hangs up.
                err = AMQPError(code: .authenticationFailed, message: "broker closed the connection during login (wrong credentials or vhost?)")
            }
            amqp_destroy_connection(c)
            return .failure(err)
        }
        let negotiated = amqp_get_channel_max(c)
        if negotiated > 0 { channelMax = UInt16(clamping: negotiated) }
        conn = c
        generation += 1
        controlOpen = false
        publishOpen = false
        freeChannels = []
        nextChannel = 3
        blocked = false
        consumerChannels = [:]
        fillingChannel = nil
        orphans = []
        assemblies = [:]

        if case .failure(let e) = openControl() { loseConnection(e); return .failure(e) }
        if case .failure(let e) = openPublish() { loseConnection(e); return .failure(e) }
        replayTopology()
        guard connected else { return .failure(AMQPError.connectionLost("lost during topology recovery")) }
        for id in consumers.keys.sorted() where consumers[id]?.channel == nil {
            let r = startConsumer(id)
            guard connected else { return .failure(AMQPError.connectionLost("lost during consumer recovery")) }
            if case .failure(let e) = r { failConsumer(id, e) }
        }
        resubscribeOrphans()
        guard connected else { return .failure(AMQPError.connectionLost("lost during consumer recovery")) }
        reconnectAttempt = 0
        nextReconnectAt = nil
        logger.info("amqp connected", metadata: ["amqp.generation": "\(generation)", "amqp.consumers": "\(consumers.count)", "amqp.consumer_channels": "\(consumerChannels.count)"])
        events.emit(.connected(generation: generation))
        return .success(())
    }

    private func attemptReconnect() {
        switch establish() {
        case .success:
            break
        case .failure(let e):
            if e.isRetryable || e.code == .connectFailed || e.code == .connectionLost {
                scheduleReconnect(after: e)
            } else {
                // A refused login will not heal by itself, but the operator
                // may fix the broker; keep trying at the slowest pace.
                logger.error("amqp reconnect refused", metadata: ["amqp.error": "\(e.code)", "amqp.reason": "\(e.message)"])
                scheduleReconnect(after: e)
            }
        }
    }

    private func scheduleReconnect(after error: AMQPError) {
        guard config.reconnect.enabled, !closing else {
            failEverything(error)
            finishLoop()
            return
        }
        reconnectAttempt += 1
        let delay = config.reconnect.delay(attempt: reconnectAttempt, random: Double.random(in: 0..<1))
        nextReconnectAt = ContinuousClock.now + delay
        logger.notice("amqp reconnect scheduled", metadata: ["amqp.attempt": "\(reconnectAttempt)", "amqp.delay_ms": "\(delay.milliseconds)"])
        events.emit(.reconnecting(attempt: reconnectAttempt, delay: delay))
    }

    /// Tears the connection down after a failure: nothing in flight may be
    /// reported as done, so every unconfirmed publish fails as retryable.
    private func loseConnection(_ error: AMQPError) {
        guard let c = conn else { return }
        conn = nil
        amqp_destroy_connection(c)
        var lost = error
        lost.isRetryable = true
        for p in confirms.reset() {
            p.reply(.failure(AMQPError.connectionLost("connection lost before the broker confirmed the publish: \(error.message)")))
        }
        mandatorySeqs = []
        for p in held { p.reply(.failure(AMQPError.connectionLost("connection lost while the broker was blocking publishes"))) }
        held = []
        for id in consumers.keys { consumers[id]?.channel = nil }
        consumerChannels = [:]
        fillingChannel = nil
        orphans = []
        mailbox.liveConsumers.withLock { $0.removeAll() }
        assemblies = [:]
        logger.warning("amqp connection lost", metadata: ["amqp.error": "\(error.code)", "amqp.reason": "\(error.message)"])
        events.emit(.disconnected(error))
        if closing || establishing {
            return
        }
        scheduleReconnect(after: lost)
    }

    // MARK: Commands

    private func handle(_ command: Command) {
        if closing || finished {
            if case .close(let r) = command { closeReplies.append(r); return }
            Mailbox.refuse(command, AMQPError(code: .connectionClosed, message: "connection is closing"))
            return
        }
        switch command {
        case .publish(let reqs):
            for r in reqs { publish(r) }
        case .settle(let gen, let channel, let consumer, let tag, let kind):
            settle(gen: gen, channel: channel, consumer: consumer, tag: tag, kind: kind)
        case .consume(let spec, let reply):
            consumers[spec.id] = Consumer(spec: spec, queue: spec.queue, tag: spec.requestedTag, channel: nil)
            if connected {
                switch startConsumer(spec.id) {
                case .success(let tag): reply(.success(tag))
                case .failure(let e):
                    consumers.removeValue(forKey: spec.id)
                    spec.continuation.finish(throwing: e)
                    reply(.failure(e))
                }
            } else {
                // Starts with the next connection; the caller's stream waits.
                reply(.success(spec.requestedTag))
            }
        case .cancel(let id, let reply):
            guard let c = consumers.removeValue(forKey: id) else { reply(.success(())); return }
            if connected, let ch = c.channel {
                let arena = CArena()
                // Deliveries that cross the cancel are handed back on arrival (`complete`).
                _ = rpc(ch) { amqp_basic_cancel($0, ch, arena.bytes(c.tag)) }
                detach(id, tag: c.tag, from: ch)
            }
            c.spec.continuation.finish()
            reply(.success(()))
        case .close(let reply):
            beginClose(reply)
        default:
            guard connected else {
                Mailbox.refuse(command, AMQPError.connectionLost("not connected to the broker; reconnecting"))
                return
            }
            runRPC(command)
        }
    }

    private func runRPC(_ command: Command) {
        if !controlOpen, case .failure(let e) = openControl() {
            Mailbox.refuse(command, e)
            return
        }
        let ch = controlChannel
        let arena = CArena()
        switch command {
        case .declareExchange(let d, let passive, let reply):
            let r = rpc(ch) {
                amqp_exchange_declare($0, ch, arena.bytes(d.name), arena.bytes(d.type.name), passive ? 1 : 0,
                                      d.durable ? 1 : 0, d.autoDelete ? 1 : 0, d.internal ? 1 : 0, arena.table(d.arguments))
            }
            if case .success = r, !passive { topology.record(d) }
            reply(r.map { _ in () })
        case .deleteExchange(let name, let ifUnused, let reply):
            let r = rpc(ch) { amqp_exchange_delete($0, ch, arena.bytes(name), ifUnused ? 1 : 0) }
            if case .success = r { topology.forgetExchange(name) }
            reply(r.map { _ in () })
        case .declareQueue(let d, let passive, let reply):
            let r = rpc(ch) {
                amqp_queue_declare($0, ch, arena.bytes(d.name), passive ? 1 : 0, d.durable ? 1 : 0,
                                   d.exclusive ? 1 : 0, d.autoDelete ? 1 : 0, arena.table(d.arguments))
            }
            switch r {
            case .success(let p?):
                let ok = p.pointee
                let result = AMQPQueueDeclareResult(name: CDecode.string(ok.queue), messageCount: ok.message_count, consumerCount: ok.consumer_count)
                if !passive { topology.record(d, actualName: result.name) }
                reply(.success(result))
            case .success(nil):
                reply(.failure(AMQPError(code: .library, message: "queue.declare returned no reply")))
            case .failure(let e):
                reply(.failure(e))
            }
        case .deleteQueue(let name, let ifUnused, let ifEmpty, let reply):
            let r = rpc(ch) { amqp_queue_delete($0, ch, arena.bytes(name), ifUnused ? 1 : 0, ifEmpty ? 1 : 0) }
            if case .success = r { topology.forgetQueue(name) }
            reply(r.map { $0?.pointee.message_count ?? 0 })
        case .purgeQueue(let name, let reply):
            let r = rpc(ch) { amqp_queue_purge($0, ch, arena.bytes(name)) }
            reply(r.map { $0?.pointee.message_count ?? 0 })
        case .bind(let b, let reply):
            let r = rpc(ch) {
                amqp_queue_bind($0, ch, arena.bytes(b.queue), arena.bytes(b.exchange), arena.bytes(b.routingKey), arena.table(b.arguments))
            }
            if case .success = r { topology.record(b) }
            reply(r.map { _ in () })
        case .unbind(let b, let reply):
            let r = rpc(ch) {
                amqp_queue_unbind($0, ch, arena.bytes(b.queue), arena.bytes(b.exchange), arena.bytes(b.routingKey), arena.table(b.arguments))
            }
            if case .success = r { topology.forget(b) }
            reply(r.map { _ in () })
        default:
            break
        }
    }

    // MARK: RPC plumbing

    /// Runs one synchronous rabbitmq-c RPC and maps its outcome. A channel
    /// exception closes only that channel; anything else ends the connection.
    private func rpc<T>(_ channel: UInt16, _ call: (amqp_connection_state_t) -> UnsafeMutablePointer<T>?) -> Result<UnsafeMutablePointer<T>?, AMQPError> {
        guard let c = conn else { return .failure(AMQPError.connectionLost("not connected")) }
        let p = call(c)
        let reply = amqp_get_rpc_reply(c)
        if reply.reply_type == AMQP_RESPONSE_NORMAL { return .success(p) }
        let err = replyError(reply, channel: channel)
        if reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && reply.reply.id == Method.channelClose {
            var ok = amqp_channel_close_ok_t()
            _ = amqp_send_method(c, channel, Method.channelCloseOk, &ok)
            channelClosed(channel, error: err, alreadyAcknowledged: true)
        } else {
            if reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && reply.reply.id == Method.connectionClose {
                var ok = amqp_connection_close_ok_t()
                _ = amqp_send_method(c, 0, Method.connectionCloseOk, &ok)
            }
            loseConnection(err)
        }
        return .failure(err)
    }

    private func replyError(_ reply: amqp_rpc_reply_t, channel: UInt16) -> AMQPError {
        switch reply.reply_type {
        case AMQP_RESPONSE_SERVER_EXCEPTION:
            if reply.reply.id == Method.channelClose, let d = reply.reply.decoded {
                let m = d.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
                return AMQPError.reply(m.reply_code, CDecode.string(m.reply_text), classID: m.class_id, methodID: m.method_id)
            }
            if reply.reply.id == Method.connectionClose, let d = reply.reply.decoded {
                let m = d.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
                return AMQPError.reply(m.reply_code, CDecode.string(m.reply_text), classID: m.class_id, methodID: m.method_id)
            }
            return AMQPError(code: .serverError, message: "unexpected server method 0x\(String(reply.reply.id, radix: 16))")
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            return libraryError(reply.library_error)
        default:
            return AMQPError(code: .library, message: "no reply from rabbitmq-c")
        }
    }

    private func libraryError(_ status: Int32) -> AMQPError {
        let text = String(cString: amqp_error_string2(status))
        switch status {
        case AMQP_STATUS_HEARTBEAT_TIMEOUT.rawValue:
            return AMQPError(code: .heartbeatTimeout, message: "broker missed heartbeats: \(text)", isRetryable: true)
        case AMQP_STATUS_CONNECTION_CLOSED.rawValue, AMQP_STATUS_SOCKET_ERROR.rawValue,
            AMQP_STATUS_SOCKET_CLOSED.rawValue, AMQP_STATUS_TIMEOUT.rawValue, AMQP_STATUS_SSL_ERROR.rawValue:
            return AMQPError.connectionLost(text)
        default:
            return AMQPError(code: .library, message: text, isRetryable: true)
        }
    }

    private func openControl() -> Result<Void, AMQPError> {
        let ch = controlChannel
        let r = rpc(ch) { amqp_channel_open($0, ch) }
        if case .success = r { controlOpen = true }
        return r.map { _ in () }
    }

    private func openPublish() -> Result<Void, AMQPError> {
        let ch = publishChannel
        if case .failure(let e) = rpc(ch, { amqp_channel_open($0, ch) }) { return .failure(e) }
        if case .failure(let e) = rpc(ch, { amqp_confirm_select($0, ch) }) { return .failure(e) }
        publishOpen = true
        return .success(())
    }

    private func allocateChannel() -> UInt16? {
        if let ch = freeChannels.popLast() { return ch }
        guard nextChannel <= channelMax else { return nil }
        defer { nextChannel += 1 }
        return nextChannel
    }

    private func closeChannel(_ ch: UInt16) {
        if let c = conn {
            let reply = amqp_channel_close(c, ch, Int32(AMQP_REPLY_SUCCESS))
            if reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION { loseConnection(libraryError(reply.library_error)) }
        }
        releaseChannel(ch)
    }

    private func setLive(_ ch: UInt16, _ consumer: UInt64, _ live: Bool) {
        let key = Mailbox.ConsumerKey(generation: generation, channel: ch, consumer: consumer)
        _ = mailbox.liveConsumers.withLock { live ? $0.insert(key).inserted : ($0.remove(key) != nil) }
    }

    private func releaseChannel(_ ch: UInt16) {
        if let state = consumerChannels.removeValue(forKey: ch) {
            for id in state.consumers.values { setLive(ch, id, false) }
        }
        if fillingChannel == ch { fillingChannel = nil }
        assemblies.removeValue(forKey: ch)
        if ch >= 3 { freeChannels.append(ch) }
    }

    /// The broker closed `channel` (already acknowledged with close-ok).
    private func channelClosed(_ channel: UInt16, error: AMQPError, alreadyAcknowledged: Bool) {
        assemblies.removeValue(forKey: channel)
        if channel == controlChannel {
            controlOpen = false
        } else if channel == publishChannel {
            publishOpen = false
            // The broker gives no per-message verdict: every unconfirmed
            // publish on this channel failed with the channel's error.
            for p in confirms.reset() {
                var e = error
                e.message = "publish channel closed by the broker: \(error.message)"
                p.reply(.failure(e))
            }
            mandatorySeqs = []
        } else if let state = consumerChannels[channel] {
            // Every consumer of the channel lost its subscription (the broker
            // requeued their unsettled deliveries); they start again on a fresh
            // channel from the loop. One whose own basic.consume failed is not
            // registered here yet: it gets the error instead.
            releaseChannel(channel)
            let ids = state.consumers.values.sorted()
            for id in ids { consumers[id]?.channel = nil }
            orphans += ids
            logger.warning("amqp consumer channel closed; resubscribing its consumers", metadata: [
                "amqp.channel": "\(channel)", "amqp.consumers": "\(ids.count)", "amqp.error": "\(error.code)", "amqp.reason": "\(error.message)",
            ])
        } else {
            releaseChannel(channel)
        }
    }

    // MARK: Publishing

    private func publish(_ r: PublishRequest) {
        guard connected else {
            r.reply(.failure(AMQPError.connectionLost("not connected to the broker; reconnecting")))
            return
        }
        if blocked {
            held.append(r)
            return
        }
        if !publishOpen, case .failure(let e) = openPublish() {
            r.reply(.failure(e))
            return
        }
        guard let c = conn else { return }
        let m = r.message
        let arena = CArena()
        var props = arena.properties(m.properties)
        let rc = m.body.withUnsafeBytes { raw in
            amqp_basic_publish(
                c, publishChannel, arena.bytes(m.exchange), arena.bytes(m.routingKey), m.mandatory ? 1 : 0, 0, &props,
                amqp_bytes_t(len: raw.count, bytes: raw.count == 0 ? nil : UnsafeMutableRawPointer(mutating: raw.baseAddress)))
        }
        if rc != AMQP_STATUS_OK.rawValue {
            let e = libraryError(rc)
            switch rc {
            case AMQP_STATUS_TABLE_TOO_BIG.rawValue, AMQP_STATUS_INVALID_PARAMETER.rawValue, AMQP_STATUS_BAD_AMQP_DATA.rawValue:
                r.reply(.failure(AMQPError(code: .invalidArgument, message: e.message)))
            default:
                r.reply(.failure(AMQPError.connectionLost("publish not written: \(e.message)")))
                loseConnection(e)
            }
            return
        }
        let key = m.mandatory ? ReturnKey(exchange: m.exchange, routingKey: m.routingKey, messageID: m.properties.messageID, body: m.body) : nil
        let seq = confirms.register(PendingPublish(reply: r.reply, returnKey: key, returned: nil))
        if m.mandatory { mandatorySeqs.append(seq) }
    }

    private func confirm(tag: UInt64, multiple: Bool, nack: Bool) {
        for p in confirms.settle(tag: tag, multiple: multiple) {
            if let returned = p.returned {
                p.reply(.failure(returned))
            } else if nack {
                p.reply(.failure(AMQPError(code: .publishNacked, message: "broker refused the message (nack)", isRetryable: true)))
            } else {
                p.reply(.success(()))
            }
        }
        if !mandatorySeqs.isEmpty { mandatorySeqs.removeAll { confirms.entry($0) == nil } }
    }

    private func returned(_ a: Assembly) {
        guard case .returned(let code, let text, let exchange, let rk) = a.kind else { return }
        let key = ReturnKey(exchange: exchange, routingKey: rk, messageID: a.properties.messageID, body: a.body)
        for seq in mandatorySeqs {
            if let e = confirms.entry(seq), e.returned == nil, e.returnKey == key {
                let err = AMQPError(code: .publishReturned, message: "broker returned the message: \(text)", replyCode: code)
                confirms.update(seq) { $0.returned = err }
                return
            }
        }
        logger.warning("amqp basic.return matched no pending publish", metadata: ["amqp.reply_code": "\(code)"])
    }

    // MARK: Consuming

    /// A consumer channel with room for one more consumer (and no consumer
    /// already using `tag`, which the broker would refuse on one channel).
    private func channelWithRoom(for tag: String) -> UInt16? {
        let bound = config.consumersPerChannel
        func fits(_ ch: UInt16) -> Bool {
            guard let state = consumerChannels[ch] else { return false }
            return state.consumers.count < bound && (tag.isEmpty || state.consumers[tag] == nil)
        }
        if let ch = fillingChannel, fits(ch) { return ch }
        let ch = consumerChannels.keys.sorted().first(where: fits)
        fillingChannel = ch
        return ch
    }

    @discardableResult
    private func startConsumer(_ id: UInt64) -> Result<String, AMQPError> {
        guard var c = consumers[id] else { return .failure(AMQPError(code: .invalidArgument, message: "unknown consumer")) }
        let ch: UInt16
        if let room = channelWithRoom(for: c.tag) {
            ch = room
        } else {
            guard let fresh = allocateChannel() else {
                return .failure(AMQPError(
                    code: .resourceError,
                    message: "no free AMQP channel (channel_max \(channelMax), \(config.consumersPerChannel) consumers per channel)"))
            }
            if case .failure(let e) = rpc(fresh, { amqp_channel_open($0, fresh) }) {
                if connected { releaseChannel(fresh) }
                return .failure(e)
            }
            consumerChannels[fresh] = ConsumerChannel()
            fillingChannel = fresh
            ch = fresh
        }
        // global=false: the prefetch applies to each consumer started after it
        // on this channel, so consumers sharing a channel keep their own.
        if consumerChannels[ch]?.prefetch != c.spec.prefetch {
            if case .failure(let e) = rpc(ch, { amqp_basic_qos($0, ch, 0, c.spec.prefetch, 0) }) {
                return .failure(e)
            }
            consumerChannels[ch]?.prefetch = c.spec.prefetch
        }
        let arena = CArena()
        let queue = topology.currentName(of: c.queue)
        let r = rpc(ch) {
            amqp_basic_consume($0, ch, arena.bytes(queue), arena.bytes(c.tag), 0, 0, c.spec.exclusive ? 1 : 0, arena.table(c.spec.arguments))
        }
        switch r {
        case .success(let ok):
            if let ok { c.tag = CDecode.string(ok.pointee.consumer_tag) }
            c.channel = ch
            c.queue = queue
            consumers[id] = c
            consumerChannels[ch]?.consumers[c.tag] = id
            setLive(ch, id, true)
            return .success(c.tag)
        case .failure(let e):
            // A refused basic.consume closed the channel: its other consumers
            // are orphans now (channelClosed), this one gets the error.
            return .failure(e)
        }
    }

    /// Ends a consumer with `error` (its subscription failed for good).
    private func failConsumer(_ id: UInt64, _ error: AMQPError) {
        guard let c = consumers.removeValue(forKey: id) else { return }
        logger.warning("amqp consumer failed", metadata: ["amqp.queue": "\(c.queue)", "amqp.error": "\(error.code)", "amqp.reason": "\(error.message)"])
        c.spec.continuation.finish(throwing: error)
    }

    /// Subscribes again the consumers whose shared channel closed under them.
    private func resubscribeOrphans() {
        while connected, !orphans.isEmpty {
            let id = orphans.removeFirst()
            guard consumers[id].map({ $0.channel == nil }) ?? false else { continue }
            let r = startConsumer(id)
            guard connected else { return }  // every consumer starts again with the next connection
            if case .failure(let e) = r { failConsumer(id, e) }
        }
    }

    /// Takes a consumer off its channel: its unsettled deliveries go back to
    /// the queue (as a closed channel would do), and an emptied channel closes.
    private func detach(_ id: UInt64, tag: String, from ch: UInt16) {
        setLive(ch, id, false)
        guard var state = consumerChannels[ch] else { return }
        if state.consumers[tag] == id { state.consumers.removeValue(forKey: tag) }
        var frames: [AckCoalescer.Frame] = []
        for t in state.owners.filter({ $0.value == id }).keys.sorted() {
            state.owners.removeValue(forKey: t)
            frames += state.acks.settle(.reject(requeue: true), tag: t)
        }
        frames += state.acks.flush()
        consumerChannels[ch] = state
        send(frames, on: ch)
        if state.consumers.isEmpty, consumerChannels[ch] != nil {
            consumerChannels.removeValue(forKey: ch)
            closeChannel(ch)
        }
    }

    private func settle(gen: UInt64, channel: UInt16, consumer: UInt64, tag: UInt64, kind: SettleKind) {
        // The channel may have closed, or the consumer been cancelled, after
        // the caller checked: then the message went back to the queue, and
        // settling now could hit an unrelated delivery with the same tag. Drop it.
        guard conn != nil, gen == generation, var state = consumerChannels[channel], state.owners[tag] == consumer else {
            logger.debug("amqp stale settlement dropped", metadata: ["amqp.channel": "\(channel)"])
            return
        }
        // `multiple` on a shared channel would settle channel-mates' deliveries
        // too: it becomes one settlement per own delivery (acks fold again).
        let tags: [UInt64]
        let single: SettleKind
        switch kind {
        case .ack(multiple: true):
            tags = state.owners.filter { $0.value == consumer && $0.key <= tag }.keys.sorted()
            single = .ack(multiple: false)
        case .nack(let requeue, multiple: true):
            tags = state.owners.filter { $0.value == consumer && $0.key <= tag }.keys.sorted()
            single = .nack(requeue: requeue, multiple: false)
        default:
            tags = [tag]
            single = kind
        }
        var frames: [AckCoalescer.Frame] = []
        for t in tags {
            state.owners.removeValue(forKey: t)
            frames += state.acks.settle(single, tag: t)
        }
        consumerChannels[channel] = state
        send(frames, on: channel)
    }

    /// Writes the acks gathered since the last flush (one `multiple` ack per
    /// channel for an in-order run).
    private func flushAcks() {
        for (channel, state) in consumerChannels where state.acks.hasPending {
            var s = state
            let frames = s.acks.flush()
            consumerChannels[channel] = s
            send(frames, on: channel)
        }
    }

    private func send(_ frames: [AckCoalescer.Frame], on channel: UInt16) {
        for f in frames {
            guard let c = conn else { return }
            let rc: Int32
            switch f {
            case .ack(let tag, let multiple): rc = amqp_basic_ack(c, channel, tag, multiple ? 1 : 0)
            case .nack(let tag, let multiple, let requeue): rc = amqp_basic_nack(c, channel, tag, multiple ? 1 : 0, requeue ? 1 : 0)
            case .reject(let tag, let requeue): rc = amqp_basic_reject(c, channel, tag, requeue ? 1 : 0)
            }
            if rc != AMQP_STATUS_OK.rawValue {
                loseConnection(libraryError(rc))
                return
            }
        }
    }

    // MARK: Frames

    private func pumpFrames() {
        var budget = 4096  // let commands in between long bursts
        while budget > 0, let c = conn {
            budget -= 1
            var frame = amqp_frame_t()
            var zero = timeval(tv_sec: 0, tv_usec: 0)
            let rc = amqp_simple_wait_frame_noblock(c, &frame, &zero)
            if rc == AMQP_STATUS_TIMEOUT.rawValue { return }
            if rc != AMQP_STATUS_OK.rawValue {
                loseConnection(libraryError(rc))
                return
            }
            dispatch(&frame, c)
            if conn != nil { amqp_maybe_release_buffers_on_channel(c, frame.channel) }
        }
    }

    private func dispatch(_ frame: inout amqp_frame_t, _ c: amqp_connection_state_t) {
        let ch = frame.channel
        switch Int32(frame.frame_type) {
        case AMQP_FRAME_METHOD:
            let method = wab_frame_method(&frame)
            handleMethod(method, channel: ch, c)
        case AMQP_FRAME_HEADER:
            guard var a = assemblies[ch] else { return }
            a.expected = wab_frame_body_size(&frame)
            if wab_frame_class_id(&frame) == 60, let p = wab_frame_properties(&frame) {
                a.properties = CDecode.properties(p.assumingMemoryBound(to: amqp_basic_properties_t.self))
            }
            a.haveHeader = true
            a.body.reserveCapacity(Int(min(a.expected, 64 << 20)))
            if a.expected == 0 {
                assemblies.removeValue(forKey: ch)
                complete(a, channel: ch)
            } else {
                assemblies[ch] = a
            }
        case AMQP_FRAME_BODY:
            guard var a = assemblies[ch] else { return }
            assemblies.removeValue(forKey: ch)  // avoid a copy of the growing body
            let fragment = wab_frame_body(&frame)
            if fragment.len > 0, let p = fragment.bytes {
                a.body.append(contentsOf: UnsafeRawBufferPointer(start: p, count: fragment.len))
            }
            if UInt64(a.body.count) >= a.expected {
                complete(a, channel: ch)
            } else {
                assemblies[ch] = a
            }
        default:
            break
        }
    }

    private func handleMethod(_ method: amqp_method_t, channel ch: UInt16, _ c: amqp_connection_state_t) {
        switch method.id {
        case Method.basicDeliver:
            let d = method.decoded.assumingMemoryBound(to: amqp_basic_deliver_t.self).pointee
            assemblies[ch] = Assembly(kind: .deliver(
                consumerTag: CDecode.string(d.consumer_tag), deliveryTag: d.delivery_tag, redelivered: d.redelivered != 0,
                exchange: CDecode.string(d.exchange), routingKey: CDecode.string(d.routing_key)))
        case Method.basicReturn:
            let r = method.decoded.assumingMemoryBound(to: amqp_basic_return_t.self).pointee
            assemblies[ch] = Assembly(kind: .returned(
                replyCode: r.reply_code, replyText: CDecode.string(r.reply_text),
                exchange: CDecode.string(r.exchange), routingKey: CDecode.string(r.routing_key)))
        case Method.basicAck where ch == publishChannel:
            let a = method.decoded.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee
            confirm(tag: a.delivery_tag, multiple: a.multiple != 0, nack: false)
        case Method.basicNack where ch == publishChannel:
            let n = method.decoded.assumingMemoryBound(to: amqp_basic_nack_t.self).pointee
            confirm(tag: n.delivery_tag, multiple: n.multiple != 0, nack: true)
        case Method.basicCancel:
            // Ends only that consumer; its channel-mates go on.
            let m = method.decoded.assumingMemoryBound(to: amqp_basic_cancel_t.self).pointee
            let tag = CDecode.string(m.consumer_tag)
            if let id = consumerChannels[ch]?.consumers[tag], let consumer = consumers.removeValue(forKey: id) {
                logger.warning("amqp consumer cancelled by broker", metadata: ["amqp.queue": "\(consumer.queue)"])
                events.emit(.consumerCancelled(consumerTag: tag, queue: consumer.queue))
                consumer.spec.continuation.finish(throwing: AMQPError(
                    code: .consumerCancelled, message: "broker cancelled the consumer of queue \(consumer.queue)"))
                detach(id, tag: tag, from: ch)
            }
        case Method.channelClose:
            let m = method.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            let err = AMQPError.reply(m.reply_code, CDecode.string(m.reply_text), classID: m.class_id, methodID: m.method_id)
            var ok = amqp_channel_close_ok_t()
            _ = amqp_send_method(c, ch, Method.channelCloseOk, &ok)
            logger.warning("amqp channel closed by broker", metadata: ["amqp.channel": "\(ch)", "amqp.error": "\(err.code)", "amqp.reason": "\(err.message)"])
            channelClosed(ch, error: err, alreadyAcknowledged: true)
        case Method.connectionClose:
            let m = method.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            let err = AMQPError.reply(m.reply_code, CDecode.string(m.reply_text), classID: m.class_id, methodID: m.method_id)
            var ok = amqp_connection_close_ok_t()
            _ = amqp_send_method(c, 0, Method.connectionCloseOk, &ok)
            loseConnection(err)
        case Method.connectionBlocked:
            let m = method.decoded.assumingMemoryBound(to: amqp_connection_blocked_t.self).pointee
            blocked = true
            let reason = CDecode.string(m.reason)
            logger.warning("amqp connection blocked by broker", metadata: ["amqp.reason": "\(reason)"])
            events.emit(.blocked(reason: reason))
        case Method.connectionUnblocked:
            blocked = false
            logger.notice("amqp connection unblocked")
            events.emit(.unblocked)
            let waiting = held
            held = []
            for r in waiting { publish(r) }
        default:
            break
        }
    }

    private func complete(_ a: Assembly, channel: UInt16) {
        switch a.kind {
        case .deliver(let consumerTag, let deliveryTag, let redelivered, let exchange, let routingKey):
            guard var state = consumerChannels[channel] else { return }  // closed: the broker requeues it
            guard let id = state.consumers[consumerTag], let consumer = consumers[id] else {
                // Crossed our basic.cancel: nobody will settle it, so hand it back now
                // (the channel lives on for its other consumers).
                let frames = state.acks.settle(.reject(requeue: true), tag: deliveryTag)
                consumerChannels[channel] = state
                send(frames, on: channel)
                return
            }
            state.owners[deliveryTag] = id
            consumerChannels[channel] = state
            let delivery = AMQPDelivery(
                body: a.body, properties: a.properties, exchange: exchange, routingKey: routingKey,
                consumerTag: consumerTag, deliveryTag: deliveryTag, redelivered: redelivered,
                settler: Settler(mailbox: mailbox, generation: generation, channel: channel, consumer: id))
            consumer.spec.continuation.yield(delivery)
        case .returned:
            returned(a)
        }
    }

    // MARK: Topology recovery

    private func replayTopology() {
        let arena = CArena()
        let ch = controlChannel
        for step in topology.replayPlan() {
            guard connected else { return }
            if !controlOpen, case .failure = openControl() { return }
            switch step {
            case .exchange(let d):
                if case .failure(let e) = rpc(ch, {
                    amqp_exchange_declare($0, ch, arena.bytes(d.name), arena.bytes(d.type.name), 0, d.durable ? 1 : 0,
                                          d.autoDelete ? 1 : 0, d.internal ? 1 : 0, arena.table(d.arguments))
                }) {
                    logger.error("amqp exchange recovery failed", metadata: ["amqp.exchange": "\(d.name)", "amqp.error": "\(e.code)"])
                }
            case .queue(let d, let recordedName):
                let r = rpc(ch) {
                    amqp_queue_declare($0, ch, arena.bytes(d.name), 0, d.durable ? 1 : 0, d.exclusive ? 1 : 0,
                                       d.autoDelete ? 1 : 0, arena.table(d.arguments))
                }
                switch r {
                case .success(let ok?): topology.renamed(recordedName, to: CDecode.string(ok.pointee.queue))
                case .success(nil): break
                case .failure(let e):
                    logger.error("amqp queue recovery failed", metadata: ["amqp.queue": "\(recordedName)", "amqp.error": "\(e.code)"])
                }
            case .binding(let b):
                let queue = topology.currentName(of: b.queue)
                if case .failure(let e) = rpc(ch, {
                    amqp_queue_bind($0, ch, arena.bytes(queue), arena.bytes(b.exchange), arena.bytes(b.routingKey), arena.table(b.arguments))
                }) {
                    logger.error("amqp binding recovery failed", metadata: ["amqp.queue": "\(queue)", "amqp.error": "\(e.code)"])
                }
            }
        }
    }

    // MARK: Closing

    private func beginClose(_ reply: @escaping Reply<Void>) {
        closing = true
        closeReplies.append(reply)
        closeDeadline = ContinuousClock.now + config.closeTimeout
        // Stop deliveries first; unacknowledged ones go back to their queues
        // when the channel closes.
        for (id, c) in consumers {
            if let ch = c.channel, connected {
                let arena = CArena()
                _ = rpc(ch) { amqp_basic_cancel($0, ch, arena.bytes(c.tag)) }
            }
            c.spec.continuation.finish()
            consumers.removeValue(forKey: id)
        }
        for r in held { r.reply(.failure(AMQPError(code: .connectionClosed, message: "connection closed while publishes were blocked", isRetryable: true))) }
        held = []
    }

    private func maybeFinishClose() {
        let timedOut = closeDeadline.map { ContinuousClock.now >= $0 } ?? true
        guard confirms.isEmpty || !connected || timedOut else { return }
        for p in confirms.reset() {
            p.reply(.failure(AMQPError(code: .connectionClosed, message: "connection closed before the broker confirmed the publish", isRetryable: true)))
        }
        if let c = conn {
            conn = nil
            _ = amqp_connection_close(c, Int32(AMQP_REPLY_SUCCESS))
            amqp_destroy_connection(c)
        }
        finishLoop()
    }

    private func failEverything(_ error: AMQPError) {
        for (_, c) in consumers { c.spec.continuation.finish(throwing: error) }
        consumers = [:]
        for p in confirms.reset() { p.reply(.failure(error)) }
        for p in held { p.reply(.failure(error)) }
        held = []
    }

    private func finishLoop() {
        guard !finished else { return }
        finished = true
        let closedErr = AMQPError(code: .connectionClosed, message: "connection is closed")
        for c in mailbox.closeAndDrain() {
            if case .close(let r) = c { closeReplies.append(r) } else { Mailbox.refuse(c, closedErr) }
        }
        for (_, c) in consumers { c.spec.continuation.finish() }
        consumers = [:]
        logger.info("amqp connection closed")
        events.emit(.closed)
        events.finish()
        for r in closeReplies { r(.success(())) }
        closeReplies = []
    }
}
