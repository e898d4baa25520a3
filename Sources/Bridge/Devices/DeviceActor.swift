import BridgeStore
import Foundation
import Logging
import WABinary
import WAClient

/// One device: owns its `WAClient`, follows its state and events, records
/// every state change in the registry and forwards it to the manager's stream.
/// Nothing here is shared with another device.
actor DeviceActor {
    let id: DeviceID
    /// Opened with the generation of this worker's lease when workers share the store (its key
    /// writes are fenced by it); replaced on every take-over.
    private var storage: DeviceStorage
    /// False while another worker may own the device (shared store, no lease here): the actor
    /// then writes nothing to the registry and publishes nothing.
    private(set) var owned: Bool
    /// The lease as this worker's clock sees it (`OwnedDevices.owns`), asked before every
    /// registry write and event: a worker resumed after a freeze must not record the `replaced`
    /// of its dead link before its ownership round even ran. Always true with one worker.
    private let leaseHeld: @Sendable () -> Bool
    private var mayRecord: Bool { owned && leaseHeld() }
    private let registry: any RegistryStoring
    /// The last registry write: each one waits for the one before, so the rows end in call order.
    private var registryTail: Task<Void, Never>?
    private let configuration: WAClientConfiguration
    /// What the device keeps of its phone's history sync (`HistorySettings`).
    /// Changed by `apply(history:)`; the history handler reads it per chunk.
    var history: HistorySettings
    private let emit: @Sendable (DeviceEvent) -> Void
    private let recorder: any EventRecording
    private let counters: MessageCounters
    /// Sends of the command path not yet recorded: a receipt that overtakes the record finds its command here.
    nonisolated let inFlight = InFlightSends()
    private let logger: Logger
    /// Event recording runs in order on one task per device, off the client's
    /// watchers, so a state change or a logout is applied as fast as before the
    /// outbox existed; `flushEvents()` waits for what is queued. (Inbound messages
    /// do not go through here: their handler records before the receipt.)
    private let jobs: AsyncStream<@Sendable () async -> Void>.Continuation
    private let worker: Task<Void, Never>
    /// Paces the retries of a refused event; `retire()` ends them.
    private let retry: EventRetry
    /// The device's JID for the handlers and events (written through with the registry).
    private let jid: JIDCache
    /// The state last written to the registry (which stays the durable record): the
    /// actor is the only writer once it exists, so it need not read it back.
    private(set) var state: DeviceState

    private(set) var client: WAClient?
    private var watchers: [Task<Void, Never>] = []
    private var qrTask: Task<Void, Never>?
    private var latestQR: QRLogin?
    private var qrWaiters: [UUID: CheckedContinuation<QRLogin, any Error>] = [:]
    /// Bumped when the client is dropped on purpose: late transitions of an old client are ignored.
    private var generation = 0

    init(id: DeviceID, storage: DeviceStorage, registry: any RegistryStoring, registered: RegisteredDevice?,
         configuration: WAClientConfiguration,
         recorder: any EventRecording, counters: MessageCounters, retryPolicy: EventRetryPolicy = EventRetryPolicy(),
         history: HistorySettings = HistorySettings(), owned: Bool = true,
         leaseHeld: @escaping @Sendable () -> Bool = { true }, logger: Logger,
         emit: @escaping @Sendable (DeviceEvent) -> Void) {
        self.id = id
        self.owned = owned
        self.leaseHeld = leaseHeld
        self.history = history
        self.storage = storage
        self.registry = registry
        self.configuration = configuration
        self.recorder = recorder
        self.counters = counters
        self.emit = emit
        retry = EventRetry(policy: retryPolicy)
        jid = JIDCache(registered?.jid)
        state = registered?.state ?? .disconnected
        let (stream, continuation) = AsyncStream.makeStream(of: (@Sendable () async -> Void).self)
        jobs = continuation
        worker = Task {
            for await job in stream { await job() }
        }
        var l = logger
        l[metadataKey: "device"] = .string(id.rawValue)
        self.logger = l
    }

    // The jobs stream ends: what is queued is still tried once, not retried forever.
    deinit {
        retry.retire()
        jobs.finish()
    }

    /// The device is going away for good (deleted, or the worker stops): a refused
    /// event is given up after its current attempt instead of being retried, so
    /// `flushEvents()` returns.
    nonisolated func retire() { retry.retire() }

    /// Undoes `retire()` (a delete that failed keeps the device).
    nonisolated func reinstate() { retry.reinstate() }

    /// Returns once every event queued so far is recorded (or, once retired, given up).
    func flushEvents() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            if case .terminated = jobs.yield({ c.resume() }) { c.resume() }
        }
    }

    /// True when the store holds a paired device (a JID and an account).
    func isLoggedIn() async -> Bool {
        (try? await storage.keys.loadDevice())?.isRegistered == true
    }

    /// The running client, if any (tests drive sends through it).
    var currentClient: WAClient? { client }

    var currentQR: QRLogin? {
        guard let q = latestQR, q.expiresAt > Date() else { return nil }
        return q
    }

    private func ensureClient() -> WAClient {
        if let client { return client }
        var messagingConfiguration = MessagingFeature.Configuration()
        history.apply(to: &messagingConfiguration)
        let messaging = MessagingFeature(
            store: storage.keys, configuration: messagingConfiguration,
            onMessage: Self.messageHandler(
                id: id, jid: jid, data: storage.data, recorder: recorder, counters: counters, logger: logger),
            onStatus: Self.statusHandler(id: id, jid: jid, data: storage.data, recorder: recorder, inFlight: inFlight,
                                         logger: logger),
            onHistory: Self.historyHandler(
                id: id, jid: jid, data: storage.data, recorder: recorder,
                settings: { [weak self, history] in await self?.history ?? history }, logger: logger),
            onUndecryptable: Self.undecryptableHandler(id: id, jid: jid, recorder: recorder))
        let appState = AppStateFeature(store: storage.keys)
        let c = WAClient(store: storage.keys, configuration: configuration, features: [messaging, appState], logger: logger)
        client = c
        // The tasks hold the streams, not the client: when the client goes away
        // its deinit finishes the streams and the tasks end.
        let states = c.stateChanges, events = c.events, gen = generation
        watchers.append(Task { [weak self] in
            for await t in states { await self?.record(t, generation: gen) }
        })
        watchers.append(Task { [weak self] in
            for await e in events { await self?.handle(e, generation: gen) }
        })
        return c
    }

    /// The `onMessage` of the device's `MessagingFeature`: the message goes to the
    /// history, then its `message.received` event into the outbox. It returns (and
    /// WhatsApp gets its receipt) only once the event is durable; a throw withholds
    /// the receipt and WhatsApp delivers the message again.
    private static func messageHandler(
        id: DeviceID, jid: JIDCache, data: any DeviceDataStoring, recorder: any EventRecording,
        counters: MessageCounters, logger: Logger
    ) -> MessagingFeature.MessageHandler {
        { message in
            guard EventFactory.isVisible(message) else { return }
            let event = EventFactory.received(message, device: id, jid: jid.jid)
            // Not cancelled with the client: a message that decrypted is kept even when the
            // client stops meanwhile (its copy redelivered later decrypts as a duplicate and
            // would otherwise be lost).
            try await Task {
                do { try await data.saveMessage(EventFactory.historyMessage(message, data: event.data)) } catch {
                    logger.warning("message not saved to history",
                                   metadata: ["code": "\(EventFactory.errorCode(error))", "id": "\(message.id)"])
                }
                try await recorder.record(event)
            }.value
            counters.countReceived(id)
        }
    }

    /// The `onUndecryptable` of the device's `MessagingFeature`: `message.undecryptable` goes into
    /// the outbox before the stanza's retry receipt and ack, like a received message: a stanza
    /// that cannot be read is never acked unreported.
    private static func undecryptableHandler(id: DeviceID, jid: JIDCache, recorder: any EventRecording)
        -> MessagingFeature.UndecryptableHandler {
        { failed in
            let event = EventFactory.undecryptable(failed, device: id, jid: jid.jid)
            // Not cancelled with the client, like the message handler.
            try await Task { try await recorder.record(event) }.value
        }
    }

    /// Queues the CloudEvent of `e` for the outbox, then hands `e` to the manager's stream.
    private func publish(_ e: DeviceEvent) {
        let event = EventFactory.cloudEvent(e, jid: jid.jid)
        let (recorder, logger, retry) = (self.recorder, self.logger, self.retry)
        jobs.yield { await Self.record(event, recorder: recorder, retry: retry, logger: logger) }
        emit(e)
    }

    /// Records one event. A failing outbox is retried with capped backoff for as long
    /// as the device lives: these facts (state, QR, login, logout) exist nowhere else.
    /// Later events wait behind it, so the outbox keeps their order. Once the device
    /// is retired the event gets its current attempt and is then given up.
    private static func record(_ event: CloudEvent, recorder: any EventRecording, retry: EventRetry,
                               logger: Logger) async {
        var failures = 0
        while true {
            do {
                try await recorder.record(event)
                if failures > 0 {
                    logger.notice("event recorded after retries", metadata: [
                        "type": "\(event.type.rawValue)", "attempts": "\(failures + 1)",
                    ])
                }
                return
            } catch {
                failures += 1
                let code = "\(EventFactory.errorCode(error))"
                if retry.isRetired {
                    logger.error("event not recorded; device retired, giving up", metadata: [
                        "type": "\(event.type.rawValue)", "code": "\(code)", "attempt": "\(failures)",
                    ])
                    return
                }
                let delay = retry.policy.delay(afterFailures: failures)
                logger.error("event not recorded; retrying", metadata: [
                    "type": "\(event.type.rawValue)", "code": "\(code)", "attempt": "\(failures)",
                    "retry_in": "\(delay)",
                ])
                await retry.pause(delay)
            }
        }
    }

    /// Writes the identity to the registry and the in-memory copy the handlers read.
    private func setIdentity(jid newJID: String?, lid: String?, pushName: String) {
        guard mayRecord else { return }
        jid.set(newJID)
        let (registry, id) = (self.registry, self.id)
        inRegistryOrder("identity not recorded") { () async throws(StoreError) in
            _ = try await registry.setIdentity(id, jid: newJID, lid: lid, pushName: pushName)
        }
    }

    /// Queues a registry write after the previous one, so the rows end in call order; the caller
    /// goes on at once (its in-memory state and events stay one step, as before the registry was
    /// async). `registryWritesSettled` waits for the queue.
    private func inRegistryOrder(_ failure: String, _ body: @escaping @Sendable () async throws(StoreError) -> Void) {
        let previous = registryTail
        let logger = logger
        let write = Task {
            await previous?.value
            do throws(StoreError) { try await body() } catch { logger.warning("\(failure)", metadata: ["code": "\(error.code)"]) }
        }
        registryTail = write
    }

    /// Returns once every registry write queued so far is done.
    func registryWritesSettled() async { await registryTail?.value }

    /// Writes the state to the registry and the in-memory copy.
    private func writeState(_ to: DeviceState) {
        guard mayRecord else { return }
        state = to
        let (registry, id) = (self.registry, self.id)
        inRegistryOrder("state not recorded") { () async throws(StoreError) in _ = try await registry.updateState(id, to: to) }
    }

    /// A device left mid-login by a crash is not connected now (`DeviceManager.start`);
    /// nothing is published, as before the actor existed.
    func settleAfterCrash() async {
        if state != .disconnected && state != .loggedOut { writeState(.disconnected) }
        await registryWritesSettled()
    }

    private func record(_ t: StateTransition, generation gen: Int) {
        guard gen == generation, mayRecord else { return }
        let to = DeviceState(rawValue: t.to.rawValue) ?? .disconnected
        let from = DeviceState(rawValue: t.from.rawValue) ?? .disconnected
        // The identity goes with the session: whoever sees `logged_out` sees no JID
        // (the `.loggedOut` event on the other stream may come a moment later).
        if to == .loggedOut { setIdentity(jid: nil, lid: nil, pushName: "") }
        writeState(to)
        publish(DeviceEvent(deviceID: id, kind: .state(from: from, to: to, reason: t.reason.description)))
    }

    private func setState(_ to: DeviceState, reason: String) {
        let from = state
        guard from != to, mayRecord else { return }
        writeState(to)
        publish(DeviceEvent(deviceID: id, kind: .state(from: from, to: to, reason: reason)))
    }

    /// The `onStatus` of the device's `MessagingFeature`: a receipt's `message.status`
    /// events go into the outbox before WhatsApp gets the receipt's ack (a throw
    /// withholds the ack and the receipt comes again). Receipts of our own other
    /// devices (read-self, sender) are not statuses of a sent message.
    private static func statusHandler(
        id: DeviceID, jid: JIDCache, data: any DeviceDataStoring, recorder: any EventRecording, inFlight: InFlightSends,
        logger: Logger
    ) -> MessagingFeature.StatusHandler {
        { u in
            guard !u.isSelf else { return }
            let jid = jid.jid
            // Not cancelled with the client, like the message handler.
            try await Task {
                for messageID in u.messageIDs {
                    // A receipt can overtake the command path's record of its send: then the
                    // command comes from memory (never waited for: see `InFlightSends`).
                    let command = try await data.command(forMessageID: messageID).map {
                        InFlightSends.CommandRef(commandID: $0.commandID, correlationID: $0.correlationID ?? $0.commandID)
                    } ?? inFlight.command(for: messageID)
                    try await recorder.record(EventFactory.status(u, messageID: messageID, command: command, device: id, jid: jid))
                    do {
                        _ = try await data.updateMessageStatus(
                            chat: u.chat.description, id: messageID, status: EventFactory.statusString(u.status))
                    } catch {
                        // The event is durable (the fact is not lost); the history row keeps its
                        // older status. Said, not swallowed.
                        logger.warning("message status not written to history",
                                       metadata: ["code": "\(EventFactory.errorCode(error))", "id": "\(messageID)"])
                    }
                }
            }.value
        }
    }

    /// A server ack (`sent`) is counted here; the command path publishes its own `sent`
    /// event. Receipts (delivered, read, played) were recorded by `statusHandler` before
    /// their ack; a `failed` the client reports about its own send is the command
    /// path's to publish, with the command id, after its retries.
    private func statusChanged(_ u: ReceiptEvent.StatusUpdate) {
        guard case .sent = u.status else { return }
        for _ in u.messageIDs { counters.countSent(id) }
    }

    private func handle(_ e: WAEvent, generation gen: Int) {
        guard gen == generation, mayRecord else { return }
        switch e {
        case .qr(let code):
            let q = QRLogin(text: code.text, expiresAt: Date().addingTimeInterval(code.validFor.timeInterval), index: code.index)
            latestQR = q
            let waiters = qrWaiters
            qrWaiters = [:]
            for w in waiters.values { w.resume(returning: q) }
            publish(DeviceEvent(deviceID: id, kind: .qr(text: q.text, expiresAt: q.expiresAt)))
        case .pairingCode(let code):
            publish(DeviceEvent(deviceID: id, kind: .pairingCode(code)))
        case .loggedIn(let info):
            latestQR = nil
            setIdentity(jid: info.jid.description, lid: info.lid?.description, pushName: info.pushName)
            publish(DeviceEvent(deviceID: id, kind: .loggedIn(jid: info.jid.description, lid: info.lid?.description,
                                                                    pushName: info.pushName)))
        case .loggedOut(let reason):
            latestQR = nil
            setIdentity(jid: nil, lid: nil, pushName: "")
            publish(DeviceEvent(deviceID: id, kind: .loggedOut(reason: reason.description)))
        case .messageStatus(let update):
            statusChanged(update)
        case .messageUndecryptable:
            break  // recorded by `undecryptableHandler` before the stanza's ack
        case .identityChanged(let change):
            publish(DeviceEvent(deviceID: id, kind: .identityChanged(
                jid: EventFactory.jid(of: change.address),
                previousKey: change.previousKey.map { $0.rawRepresentation.base64EncodedString() },
                newKey: change.newKey.map { $0.rawRepresentation.base64EncodedString() })))
        case .offlineSyncCompleted(let count):
            publish(DeviceEvent(deviceID: id, kind: .offlineSync(count: count)))
        case .pairingRefused(let code, let reason):
            // Passkey linking offered, or a pairing code that could not be finished: the login
            // will not complete by itself; an operator starts another.
            logger.warning("pairing refused", metadata: ["code": "\(code)"])
            counters.countDeviceError("PAIRING_REFUSED")
            publish(DeviceEvent(deviceID: id, kind: .error(code: "PAIRING_REFUSED", message: "\(reason) (\(code))", reason: nil)))
        case .stopped(let reason):
            if let error = Self.operatorError(reason, version: configuration.appVersion) {
                // An operator must act (upgrade, wait out a ban, find the other connection): say so
                // once, loudly, as an event, a metric and a log line, never as a silent stop.
                logger.error("device stopped", metadata: ["code": "\(error.code)", "hint": "\(error.message)"])
                counters.countDeviceError(error.code)
                publish(DeviceEvent(deviceID: id, kind: .error(code: error.code, message: error.message, reason: error.reason)))
            }
            latestQR = nil
            // A stopped client is not reused: the next login or connect makes a fresh one
            // (after a logout its cached record would be stale).
            client = nil
            failQRWaiters(DeviceError(.loginFailed, "the client stopped"))
        case .appStateSyncFailed(let collection, let version, let code):
            publish(DeviceEvent(deviceID: id, kind: .appStateSyncFailed(collection: collection, version: version, code: code)))
        default:
            break
        }
    }

    /// The `device.error` a stop deserves, if any: stops that need an operator, not those the owner
    /// asked for, a logout (it has its own event) or an unscanned QR.
    static func operatorError(_ reason: StopReason, version: [UInt32]) -> (code: String, message: String, reason: Int?)? {
        switch reason {
        case .clientOutdated:
            return ("CLIENT_OUTDATED", "WhatsApp refused client version \(WAClientConfiguration.versionString(version)) (405); "
                    + "set WABRIDGE_WA_VERSION to the current WhatsApp Web version and reconnect the device", 405)
        case .refused(let f):
            return (f.code, "WhatsApp refused the login (failure \(f.reason)); the device is not retried automatically", f.reason)
        case .banned(let f) where f.kind == .temporaryBan:
            let until = f.expiresIn.map { " for \($0) s" } ?? ""
            return (f.code, "the account is temporarily banned\(until) (code \(f.banCode.map(String.init) ?? "none")); reconnect after it ends", f.reason)
        case .banned(let f):
            return (f.code, "the account is \(f.kind == .locked ? "locked" : "banned") (failure \(f.reason)); its keys were wiped, link it again once resolved", f.reason)
        case .replaced:
            return ("REPLACED", "another connection logged in as this device; it was stopped instead of fighting for it", nil)
        case .gaveUp(let attempts):
            return ("RECONNECT_GAVE_UP", "gave up reconnecting after \(attempts) attempts; reconnect the device", nil)
        case .ownerRequested, .loggedOut, .qrTimeout:
            return nil
        }
    }

    private func failQRWaiters(_ error: DeviceError) {
        let waiters = qrWaiters
        qrWaiters = [:]
        for w in waiters.values { w.resume(throwing: error) }
    }

    /// Connects (a logged-in device resumes its session).
    func connect() async throws(DeviceError) {
        do { try await ensureClient().start() } catch { throw DeviceError.from(error) }
    }

    /// A client that reported `logged_out` is done (it stops once its wipe is over):
    /// a new login must not reuse it.
    private func dropLoggedOutClient() async {
        if client != nil, state == .loggedOut { await shutdown() }
    }

    /// Starts (or joins) a QR login and returns the code showing now.
    func startQRLogin(timeout: Duration) async throws(DeviceError) -> QRLogin {
        if await isLoggedIn() { throw DeviceError(.alreadyLoggedIn, "device \(id) is already logged in") }
        if qrTask == nil { await dropLoggedOutClient() }
        if let q = currentQR { return q }
        let c = ensureClient()
        if qrTask == nil {
            let stream = await c.loginWithQR()
            qrTask = Task { [weak self] in
                do {
                    for try await _ in stream {}
                } catch {
                    await self?.qrEnded(DeviceError.from(error))
                    return
                }
                await self?.qrEnded(nil)
            }
        }
        do {
            return try await withThrowingTaskGroup(of: QRLogin.self) { group in
                group.addTask { try await self.nextQR() }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    throw DeviceError(.unavailable, "no QR code from WhatsApp within \(timeout)")
                }
                let q = try await group.next()!
                group.cancelAll()
                return q
            }
        } catch {
            throw DeviceError.from(error)
        }
    }

    private func nextQR() async throws -> QRLogin {
        if let q = currentQR { return q }
        let key = UUID()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<QRLogin, any Error>) in
                if Task.isCancelled { c.resume(throwing: CancellationError()) } else { qrWaiters[key] = c }
            }
        } onCancel: {
            Task { await self.cancelWaiter(key) }
        }
    }

    private func cancelWaiter(_ key: UUID) {
        qrWaiters.removeValue(forKey: key)?.resume(throwing: CancellationError())
    }

    private func qrEnded(_ error: DeviceError?) {
        qrTask = nil
        if let error { failQRWaiters(error) }
    }

    /// Asks for a pairing code for `phone`; login completes by itself once it is typed on the phone.
    func pairWithCode(phone: String) async throws(DeviceError) -> String {
        if await isLoggedIn() { throw DeviceError(.alreadyLoggedIn, "device \(id) is already logged in") }
        await dropLoggedOutClient()
        do { return try await ensureClient().pairWithCode(phoneNumber: phone) } catch { throw DeviceError.from(error) }
    }

    /// Stops the client and starts it again.
    func reconnect() async throws(DeviceError) {
        await shutdown()
        try await connect()
    }

    /// Tells WhatsApp to unlink this companion (whatsmeow's `remove-companion-device`,
    /// reason `user_initiated`), when connected; best effort, bounded by 5 s.
    func removeOnServer() async {
        guard let client, await client.state == .connected, let me = await client.loginInfo?.jid else { return }
        let iq = Node("iq", [Attribute("to", .jid(.serverJID)), Attribute("type", "set"), Attribute("xmlns", "md")],
                      content: .nodes([Node("remove-companion-device", [
                          Attribute("jid", .jid(me)), Attribute("reason", "user_initiated"),
                      ])]))
        do { _ = try await client.sendIQ(iq, timeout: .seconds(5)) } catch {
            logger.warning("unlink on WhatsApp failed; wiping locally anyway", metadata: ["error": "\(error)"])
        }
    }

    /// Unlinks on WhatsApp when connected, wipes the keys and keeps the slot: state `logged_out`.
    func logout() async throws(DeviceError) {
        await removeOnServer()
        await shutdown()
        do { try await storage.keys.wipe() } catch { throw DeviceError.from(error) }
        setIdentity(jid: nil, lid: nil, pushName: "")
        setState(.loggedOut, reason: "logout_requested")
        publish(DeviceEvent(deviceID: id, kind: .loggedOut(reason: "logout_requested")))
        await registryWritesSettled()
    }

    // MARK: Ownership (workers sharing one store)

    /// This worker took the device's lease: from now on its keys are written with `storage`'s
    /// generation, and the state the previous owner left (connected, when it died) is settled.
    func takeOwnership(_ storage: DeviceStorage) async {
        self.storage = storage
        owned = true
        if let registered = try? await registry.device(id) {
            state = registered.state
            jid.set(registered.jid)
        }
        await settleAfterCrash()
    }

    /// Handing over (rebalance, SIGTERM): the link closes and `disconnected` is recorded while
    /// the lease is still ours; then the actor goes quiet.
    func handOver() async {
        await shutdown()
        owned = false
    }

    /// The lease is gone (expired, taken over): another worker may own the device already, so
    /// the actor goes quiet first and only then closes the link, recording nothing.
    func abandon() async {
        owned = false
        await shutdown()
    }

    /// True while a QR or pairing-code login runs: such a device is not handed over.
    var isLoggingIn: Bool { qrTask != nil || (client != nil && jid.jid == nil) }

    /// Stops the client for good and forgets it (a later call makes a fresh one).
    func shutdown() async {
        qrTask?.cancel()
        qrTask = nil
        failQRWaiters(DeviceError(.unavailable, "device stopped"))
        latestQR = nil
        // A client that just reported logged_out is still wiping its store: let it finish
        // (it reports `stopped` afterwards, which drops it) rather than cancel the wipe.
        if client != nil, state == .loggedOut {
            for _ in 0..<40 where client != nil {
                try? await Task.sleep(for: .milliseconds(50))
            }
        }
        generation += 1
        if let client { await client.stop() }
        client = nil
        if state == .connecting || state == .connected || state == .reconnecting {
            setState(.disconnected, reason: "stopped")
        }
        // The watchers end with the client's streams; do not wait for them.
        for w in watchers { w.cancel() }
        watchers = []
        await registryWritesSettled()
    }
}

extension Duration {
    var timeInterval: TimeInterval {
        let (s, a) = components
        return TimeInterval(s) + TimeInterval(a) / 1e18
    }
}
