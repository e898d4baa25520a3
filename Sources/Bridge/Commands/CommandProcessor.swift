import AMQP
import BridgeStore
import Foundation
import Logging
import WABinary
import WAClient
import WACrypto
import WAProto

/// Settings of the command path (`WABRIDGE_COMMAND_WAIT`, `WABRIDGE_SEND_RATE`, `WABRIDGE_SEND_BURST`).
public struct CommandSettings: Sendable, Equatable {
    /// How long a command waits for a `disconnected`/`logged_out` device before `DEVICE_NOT_CONNECTED`.
    public var commandWait: Duration
    /// Sends per second per device, and how many may go at once after a pause.
    public var sendRate: Double
    public var sendBurst: Int
    /// Unacknowledged commands the broker hands a device's consumer ahead; the most one
    /// pipelined run of sends can hold (`CommandProcessor.handle(batch:)`).
    public var prefetch: UInt16
    /// Wait before a delivery is handed back to the broker after a broker or store failure.
    public var retryBackoff: Duration
    /// How often a waiting command looks at the device's state again.
    public var pollInterval: Duration

    public init(commandWait: Duration = .seconds(30), sendRate: Double = 1, sendBurst: Int = 5, prefetch: UInt16 = 64,
                retryBackoff: Duration = .seconds(1), pollInterval: Duration = .milliseconds(100)) {
        self.commandWait = commandWait
        self.sendRate = sendRate
        self.sendBurst = sendBurst
        self.prefetch = max(1, prefetch)  // 0 would be "unlimited" to the broker and an empty batch to us
        self.retryBackoff = retryBackoff
        self.pollInterval = pollInterval
    }
}

/// Handles a delivery for one device (or for the unrouted queue); runs of sends
/// are pipelined by `handle(batch:)` (CommandProcessor+Pipeline.swift):
/// parse → validate → recipients → idempotency → device state → pacing →
/// send → record → reply → `message.status` → ack. Refusals are
/// dead-lettered (confirmed), recorded as `command.rejected`, answered, then
/// acknowledged. A broker or store failure hands the delivery back (nack with
/// requeue after `retryBackoff`) rather than lose it.
struct CommandProcessor: Sendable {
    let connection: AMQPConnection
    let manager: DeviceManager
    let events: any EventRecording
    let topology: BridgeTopology
    let settings: CommandSettings
    let logger: Logger

    /// What became of a delivery.
    enum Outcome: Sendable, Equatable {
        case acked
        case requeued
    }

    /// Thrown inside the pipeline when the broker or the store failed: hand the delivery back.
    struct Retry: Error {
        var reason: String
    }

    // MARK: Device queue

    /// Processes one delivery from `device`'s queue; throws only `CancellationError`
    /// (the worker stops; the unacknowledged delivery returns to the queue).
    @discardableResult
    func handle(_ d: AMQPDelivery, device: DeviceID, pacer: Pacer,
                parsed: Result<ParsedCommand, CommandRefusal>? = nil,
                queuedAs: String? = nil) async throws(CancellationError) -> Outcome {
        let routingKey = Self.originalRoutingKey(d)
        return try await handingBackOnFailure(d) {
            let command: ParsedCommand
            switch parsed ?? CommandParser.parse(body: d.body, properties: d.properties) {
            case .failure(let refusal):
                return try await refuse(d, refusal, device: device, routingKey: routingKey)
            case .success(let c): command = c
            }
            return try await run(command, d, device: device, routingKey: routingKey, pacer: pacer, queuedAs: queuedAs)
        }
    }

    /// Runs `body` on a delivery; a broker or store failure inside hands the delivery
    /// back to the broker (`requeue`) instead of losing it. Only cancellation escapes.
    func handingBackOnFailure(
        _ d: AMQPDelivery, _ body: () async throws -> Outcome
    ) async throws(CancellationError) -> Outcome {
        do {
            return try await body()
        } catch let retry as Retry {
            return try await requeue(d, reason: retry.reason)
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            return try await requeue(d, reason: "\(error)")
        }
    }

    /// `queuedAs`: the message id a pipelined run already recorded `queued` under, so a
    /// refusal before the send still ends its statuses with `failed`.
    private func run(_ c: ParsedCommand, _ d: AMQPDelivery, device: DeviceID, routingKey: String,
                     pacer: Pacer, queuedAs: String? = nil) async throws -> Outcome {
        let data: any DeviceDataStoring
        do { data = try await manager.dataStore(device) } catch {
            if error.code == .notFound {
                return try await refuse(d, CommandRefusal(.deviceNotFound, "device \(device) no longer exists",
                                                          commandID: c.id, kind: c.kind.rawValue), device: device, routingKey: routingKey)
            }
            throw Retry(reason: "data store: \(error.code)")
        }
        // Idempotency: a recorded command answers its first result again, sends nothing.
        let stored: IdempotencyRecord?
        do { stored = try await data.commandResult(c.id) } catch { throw Retry(reason: "idempotency lookup: \(error.code)") }
        if let stored {
            logger.debug("command repeated; replying its recorded result", metadata: meta(c, device))
            try await reply(c, body: Array(stored.result.utf8))
            if c.kind.sendsMessage, let mid = stored.messageID, let chat = c.action.chat {
                try await recordStatus(device: device, c, messageID: mid, chat: chat, status: "sent", error: nil,
                                       failedDevices: Self.failedDevices(inResult: stored.result))
            }
            return ack(d)
        }

        var client: WAClient?
        var messageID: String?
        if c.kind.needsConnection {
            switch try await awaitConnected(device) {
            case .failure(let refusal):
                return try await failSend(c, d, refusal, messageID: c.kind.sendsMessage ? queuedAs : nil, device: device,
                                          routingKey: routingKey)
            case .success(let (live, own)):
                client = live
                messageID = c.kind.sendsMessage ? MessageID.derived(idempotencyKey: c.id, device: own) : nil
            }
            if let messageID, let chat = c.action.chat {
                try await recordStatus(device: device, c, messageID: messageID, chat: chat, status: "queued", error: nil)
            }
            let wait = await pacer.reserve()
            if wait > .zero { try await Task.sleep(for: wait) }
        }

        // A receipt that overtakes this send's record finds its command here (`InFlightSends`).
        let inFlight = messageID == nil ? nil : await manager.inFlightSends(device)
        if let messageID { inFlight?.begin([(messageID, .init(commandID: c.id, correlationID: c.correlationID))]) }
        defer { if let messageID { inFlight?.end([messageID]) } }

        // Send, going back to waiting while the link is down (same message id: no duplicate).
        var transient = 0
        var outcome: Result<JSONValue, CommandRefusal>
        sending: while true {
            do {
                outcome = .success(try await execute(c, client: client, messageID: messageID, device: device))
                break sending
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                if Self.isTransient(error), transient < 5 {
                    transient += 1
                    logger.info("send interrupted; waiting for the device", metadata: meta(c, device, ["error": "\(Self.code(error))"]))
                    try await Task.sleep(for: settings.pollInterval)
                    switch try await awaitConnected(device) {
                    case .failure(let refusal):
                        outcome = .failure(refusal)
                    case .success(let (live, _)):
                        client = live
                        continue sending
                    }
                    break sending
                }
                outcome = .failure(Self.refusal(for: error))
                break sending
            }
        }

        switch outcome {
        case .failure(let refusal):
            return try await failSend(c, d, refusal, messageID: messageID, device: device, routingKey: routingKey)
        case .success(let result):
            // Sent: finish even when the worker is being stopped (a detached task does not
            // inherit the cancellation), so a shutdown right after a send still records it.
            let finishing = Task { [self, messageID] in
                try await finish(c, d, device: device, data: data, result: result, messageID: messageID)
            }
            return try await finishing.value
        }
    }

    /// A command that will not be sent: `failed` ends its message's statuses (once `queued`
    /// was recorded), then it is refused (dead-lettered, `command.rejected`, answered, acked).
    func failSend(_ c: ParsedCommand, _ d: AMQPDelivery, _ refusal: CommandRefusal, messageID: String?, device: DeviceID,
                  routingKey: String) async throws -> Outcome {
        var refusal = refusal
        refusal.commandID = c.id
        refusal.kind = c.kind.rawValue
        if let messageID, let chat = c.action.chat {
            try await recordStatus(device: device, c, messageID: messageID, chat: chat, status: "failed",
                                   error: ["code": .string(refusal.code.rawValue), "message": .string(refusal.message)])
        }
        return try await refuse(d, refusal, device: device, routingKey: routingKey, replyTo: c.replyTo,
                                correlationID: c.correlationID)
    }

    /// The refusal for a send that failed for good.
    static func refusal(for error: any Error) -> CommandRefusal {
        if let refusal = error as? CommandRefusal { return refusal }
        return CommandRefusal(.sendFailed, "WhatsApp refused the command: \(code(error))")
    }

    /// Records the result, answers, records `message.status` `sent`, then acks.
    func finish(_ c: ParsedCommand, _ d: AMQPDelivery, device: DeviceID, data: any DeviceDataStoring, result: JSONValue,
                        messageID: String?) async throws -> Outcome {
        let text = String(decoding: result.encoded(), as: UTF8.self)
        let record: IdempotencyRecord
        do {
            record = try await data.recordCommandResult(commandID: c.id, messageID: messageID, result: text,
                                                        correlationID: c.correlationID).record
        } catch {
            throw Retry(reason: "recording the result: \(error.code)")
        }
        // `sent` before the reply: a reply that fails (broker down) must not let the
        // recipient's receipts reach the outbox ahead of it.
        if let messageID, let chat = c.action.chat {
            try await recordStatus(device: device, c, messageID: messageID, chat: chat, status: "sent", error: nil,
                                   failedDevices: result["failed_devices"])
        }
        try await reply(c, body: Array(record.result.utf8))
        logger.debug("command done", metadata: meta(c, device))
        return ack(d)
    }

    /// Waits until the device has a live, logged-in link. `connecting`/`reconnecting` wait
    /// as long as it takes; `disconnected`/`logged_out` for `commandWait`, then refuse.
    func awaitConnected(_ device: DeviceID) async throws(CancellationError) -> Result<(WAClient, JID), CommandRefusal> {
        let clock = ContinuousClock()
        var deadline: ContinuousClock.Instant?
        while true {
            guard let recorded = await manager.recordedState(device) else {
                return .failure(CommandRefusal(.deviceNotFound, "device \(device) no longer exists"))
            }
            let client = await manager.commandClient(device)
            var state = recorded
            if let client {
                let live = await client.state
                if live == .connected, let me = await client.loginInfo?.jid { return .success((client, me)) }
                state = DeviceState(rawValue: live.rawValue) ?? recorded
                // A running client that is not connected yet is on its way there.
                if state == .connected { state = .connecting }
            }
            switch state {
            case .connecting, .reconnecting, .connected:
                deadline = nil
            case .disconnected, .loggedOut:
                let d = deadline ?? clock.now + settings.commandWait
                deadline = d
                if clock.now >= d {
                    return .failure(CommandRefusal(
                        .deviceNotConnected, "device \(device) stayed \(state.rawValue) for \(settings.commandWait)"))
                }
            }
            do { try await Task.sleep(for: settings.pollInterval) } catch { throw CancellationError() }
        }
    }

    /// Carries out the command; returns the result document.
    private func execute(_ c: ParsedCommand, client: WAClient?, messageID: String?, device: DeviceID) async throws -> JSONValue {
        var result: [String: JSONValue] = ["command_id": .string(c.id), "kind": .string(c.kind.rawValue)]
        func sent(_ s: SentMessage) { result = Self.sentResult(c, s) }
        switch c.action {
        case .logout:
            try await manager.logout(device.rawValue)
            result["status"] = "done"
        case .reconnect:
            do { try await manager.reconnect(device.rawValue) } catch {
                if error.code == .notLoggedIn { throw CommandRefusal(.deviceNotConnected, "device \(device) is not logged in") }
                throw error
            }
            result["status"] = "done"
        default:
            guard let client else { throw WAClientError(.notConnected, "no client") }
            switch c.action {
            case .sendText, .react, .revoke, .edit:
                guard let (chat, content) = Self.content(of: c.action, own: await client.loginInfo?.jid) else { break }
                sent(try await client.sendMessage(to: chat, content, id: messageID))
            case .read(let chat, let ids, let sender):
                try await client.markRead(ids: ids, chat: chat, sender: sender)
                result["status"] = "sent"
                result["timestamp"] = .string(CloudEvent.timeString(Date()))
            case .logout, .reconnect:
                break
            }
        }
        return .object(result)
    }

    // MARK: Unrouted queue

    /// A command nobody's queue took: `default` goes to the only device (forwarded to its
    /// queue, so it keeps its place among `default` commands); otherwise refused.
    @discardableResult
    func handleUnrouted(_ d: AMQPDelivery) async throws(CancellationError) -> Outcome {
        let key = d.routingKey
        let devices = await manager.deviceIDs
        var target: DeviceID?
        var refusal: CommandRefusal?
        if key == "default" {
            switch devices.count {
            case 0: refusal = CommandRefusal(.deviceNotFound, "routing key default and no device exists")
            case 1: target = devices[0]
            default: refusal = CommandRefusal(.deviceIDRequired, "routing key default and \(devices.count) devices exist: name one")
            }
        } else if let id = try? DeviceID(key), devices.contains(id) {
            target = id  // created after the command was published: its queue exists now
        } else {
            refusal = CommandRefusal(.deviceNotFound, "no device \(key)")
        }
        return try await handingBackOnFailure(d) {
            if let target {
                var props = d.properties
                var headers = props.headers ?? [:]
                headers["x-wabridge-routing-key"] = .string(key)
                props.headers = headers
                let out = AMQPOutgoingMessage(exchange: "", routingKey: topology.commandQueue(deviceID: target.rawValue),
                                              body: d.body, properties: props, mandatory: true)
                do throws(AMQPError) { try await connection.publish(out) } catch { throw Retry(reason: "forward: \(error.code)") }
                return ack(d)
            }
            var r = refusal!
            if case .success(let c) = CommandParser.parse(body: d.body, properties: d.properties) {
                r.commandID = c.id
                r.kind = c.kind.rawValue
            } else if let o = JSONValue.parse(Data(d.body)) {
                r.commandID = o["id"]?.stringValue ?? d.properties.messageID
                r.kind = o["kind"]?.stringValue
            }
            return try await refuse(d, r, device: nil, routingKey: key)
        }
    }

    // MARK: Refusal, reply, events

    /// Dead-letters (confirmed), records `command.rejected`, replies, acknowledges.
    func refuse(_ d: AMQPDelivery, _ r: CommandRefusal, device: DeviceID?, routingKey: String,
                        replyTo: String? = nil, correlationID: String? = nil) async throws -> Outcome {
        var props = d.properties
        var headers = props.headers ?? [:]
        headers["x-wabridge-error-code"] = .string(r.code.rawValue)
        headers["x-wabridge-error"] = .string(r.message)
        headers["x-wabridge-routing-key"] = .string(routingKey)
        if let device { headers["x-wabridge-device"] = .string(device.rawValue) }
        props.headers = headers
        if props.deliveryMode == nil { props.deliveryMode = .persistent }
        do {
            try await connection.publish(AMQPOutgoingMessage(exchange: topology.deadExchange, routingKey: routingKey,
                                                             body: d.body, properties: props))
        } catch {
            throw Retry(reason: "dead-letter publish: \(error.code)")
        }
        logger.notice("command refused", metadata: [
            "device": "\(device?.rawValue ?? "-")", "command.id": "\(r.commandID ?? "-")", "command.kind": "\(r.kind ?? "-")",
            "error.code": "\(r.code.rawValue)",
        ])

        var data: [String: JSONValue] = [
            "routing_key": .string(routingKey),
            "error": ["code": .string(r.code.rawValue), "message": .string(r.message)],
        ]
        if let id = r.commandID { data["command_id"] = .string(id) }
        if let kind = r.kind { data["kind"] = .string(kind) }
        let correlation = correlationID ?? d.properties.correlationID ?? r.commandID
        let eventDevice = device ?? (try? DeviceID(routingKey))
        if let eventDevice {
            let event = CloudEvent(
                id: Self.eventID(eventDevice.rawValue, r.commandID ?? Self.hex(Symmetric.sha256(Data(d.body))), "rejected",
                                 routingKey, r.code.rawValue),
                type: .commandRejected, deviceID: eventDevice, correlationID: correlation, data: .object(data))
            do { try await events.record(event) } catch {
                // Recording failed (the store): for an unknown device the dead-letter copy is the record.
                guard device == nil else { throw Retry(reason: "command.rejected not recorded: \(error)") }
                logger.warning("command.rejected not recorded for an unknown device", metadata: ["routing_key": "\(routingKey)"])
            }
        }

        if let to = replyTo ?? d.properties.replyTo, !to.isEmpty {
            var result: [String: JSONValue] = [
                "status": r.code == .sendFailed ? "failed" : "rejected",
                "error": ["code": .string(r.code.rawValue), "message": .string(r.message)],
            ]
            if let id = r.commandID { result["command_id"] = .string(id) }
            if let kind = r.kind { result["kind"] = .string(kind) }
            try await publishReply(to: to, correlationID: correlation, body: Array(JSONValue.object(result).encoded()))
        }
        return ack(d)
    }

    func reply(_ c: ParsedCommand, body: [UInt8]) async throws {
        guard let to = c.replyTo else { return }
        try await publishReply(to: to, correlationID: c.correlationID, body: body)
    }

    func publishReply(to: String, correlationID: String?, body: [UInt8]) async throws {
        do {
            try await connection.publish(replyMessage(to: to, correlationID: correlationID, body: body))
        } catch {
            throw Retry(reason: "reply publish: \(error.code)")
        }
    }

    /// A result for `reply_to` (persistent, JSON, the command's correlation id).
    func replyMessage(to: String, correlationID: String?, body: [UInt8]) -> AMQPOutgoingMessage {
        let props = AMQPProperties(contentType: "application/json", deliveryMode: .persistent, correlationID: correlationID,
                                   timestamp: UInt64(Date().timeIntervalSince1970), appID: "wabridge")
        return AMQPOutgoingMessage(exchange: "", routingKey: to, body: body, properties: props)
    }

    func recordStatus(device: DeviceID, _ c: ParsedCommand, messageID: String, chat: JID, status: String,
                      error: JSONValue?, failedDevices: JSONValue? = nil) async throws {
        let event = statusEvent(device: device, c, messageID: messageID, chat: chat, status: status, error: error,
                                failedDevices: failedDevices)
        do { try await events.record(event) } catch { throw Retry(reason: "message.status not recorded: \(error)") }
    }

    /// The `message.status` a command records about its message; its id is stable per (device, command, status).
    func statusEvent(device: DeviceID, _ c: ParsedCommand, messageID: String, chat: JID, status: String,
                     error: JSONValue?, failedDevices: JSONValue? = nil) -> CloudEvent {
        var data: [String: JSONValue] = [
            "message_id": .string(messageID), "chat": .string(chat.description), "status": .string(status),
            "command_id": .string(c.id),
        ]
        if let error { data["error"] = error }
        if let failedDevices { data["failed_devices"] = failedDevices }
        return CloudEvent(id: Self.eventID(device.rawValue, c.id, "status", status), type: .messageStatus,
                          deviceID: device, correlationID: c.correlationID, data: .object(data))
    }

    // MARK: Settling

    func ack(_ d: AMQPDelivery) -> Outcome {
        do { try d.ack() } catch {
            // The channel is gone: the broker redelivers, and the idempotency record answers it.
            logger.info("ack on a dead channel; the broker will redeliver", metadata: ["amqp.error": "\(error.code)"])
        }
        return .acked
    }

    func requeue(_ d: AMQPDelivery, reason: String) async throws(CancellationError) -> Outcome {
        logger.warning("command handed back to the broker", metadata: ["reason": "\(reason)"])
        do { try await Task.sleep(for: settings.retryBackoff) } catch { throw CancellationError() }
        do { try d.nack(requeue: true) } catch {
            logger.info("nack on a dead channel; the broker will redeliver", metadata: ["amqp.error": "\(error.code)"])
        }
        return .requeued
    }

    // MARK: Helpers

    /// The routing key the command was published with (kept in a header when the
    /// unrouted queue forwarded it).
    static func originalRoutingKey(_ d: AMQPDelivery) -> String {
        d.properties.headers?["x-wabridge-routing-key"]?.stringValue ?? d.routingKey
    }

    /// A stable event id: the same fact recorded twice (a redelivery) gets the same id.
    static func eventID(_ parts: String...) -> String {
        "cmd-" + hex(Symmetric.sha256(Data(parts.joined(separator: "\u{0}").utf8)).prefix(16))
    }

    static func hex(_ d: Data) -> String { d.map { String(format: "%02x", $0) }.joined() }

    /// The result document of a command whose message the server acknowledged.
    static func sentResult(_ c: ParsedCommand, _ s: SentMessage) -> [String: JSONValue] {
        var result: [String: JSONValue] = [
            "command_id": .string(c.id), "kind": .string(c.kind.rawValue), "status": "sent", "message_id": .string(s.id),
            "timestamp": .string(CloudEvent.timeString(s.timestamp ?? Date())),
        ]
        if let failed = failedDevices(s) { result["failed_devices"] = failed }
        return result
    }

    /// The recipient devices a send skipped (`device`, `code`), nil when none: the others got it.
    static func failedDevices(_ s: SentMessage) -> JSONValue? {
        guard !s.failedDevices.isEmpty else { return nil }
        return .array(s.failedDevices.map { ["device": .string($0.device.description), "code": .string($0.code)] })
    }

    /// `failed_devices` of a recorded result (text), for the `sent` status that goes with it.
    static func failedDevices(inResult text: String) -> JSONValue? {
        JSONValue.parse(Data(text.utf8))?["failed_devices"]
    }

    /// The chat and the WhatsApp message of a command that sends one (nil for the others).
    /// `own`: our JID, the sender of a reaction to our own message.
    static func content(of action: CommandAction, own: JID?) -> (JID, WAE2E_Message)? {
        switch action {
        case .sendText(let to, let text, let quoted, let mentions):
            (to, OutgoingContent.text(text, replyTo: quoted.map { QuotedMessage(id: $0.id, sender: $0.sender) },
                                      mentions: mentions))
        case .react(let chat, let target, let sender, let fromMe, let emoji):
            (chat, OutgoingContent.reaction(chat: chat, messageID: target, sender: sender ?? (fromMe ? own?.nonAD ?? chat : chat),
                                            fromMe: fromMe, emoji: emoji))
        case .revoke(let chat, let target):
            (chat, OutgoingContent.revoke(chat: chat, messageID: target))
        case .edit(let chat, let target, let text):
            (chat, OutgoingContent.edit(chat: chat, messageID: target, newText: text))
        case .read, .logout, .reconnect:
            nil
        }
    }

    /// Link trouble (worth waiting for the device again) rather than a refusal by WhatsApp.
    /// `not_owner` too: the device moved to another worker, whose consumer sends the command
    /// once this one stops and hands it back to the queue.
    static func isTransient(_ error: any Error) -> Bool {
        guard let e = error as? WAClientError else { return !(error is CommandRefusal) && !(error is DeviceError) }
        return [.notConnected, .connectionClosed, .ackTimeout, .notOwner].contains(e.code)
    }

    static func code(_ error: any Error) -> String {
        if let e = error as? WAClientError { return e.code.rawValue }
        if let e = error as? DeviceError { return e.code.rawValue }
        return String(describing: type(of: error))
    }

    func meta(_ c: ParsedCommand, _ device: DeviceID, _ extra: Logger.Metadata = [:]) -> Logger.Metadata {
        var m: Logger.Metadata = ["device": "\(device.rawValue)", "command.id": "\(c.id)", "command.kind": "\(c.kind.rawValue)"]
        m.merge(extra) { $1 }
        return m
    }
}
