import Foundation
import Logging
import NIOSSL
import WABinary
import WACrypto
import WAProto

/// The connection engine of one WhatsApp device.
///
/// One actor owns everything mutable about the device's link: the socket,
/// the Noise session, pending IQs, pairing and keepalive. Protocol decisions
/// live in value types (`ConnectionMachine`, `Pairing`, `StreamOutcome`,
/// `ClientPayloadBuilder`); this actor performs their actions.
///
/// `start()` connects and keeps the device connected (reconnecting with
/// backoff) until `stop()`, or until a permanent outcome: replaced, logged
/// out (keys wiped), banned, outdated. `events` and `stateChanges` report
/// everything in order.
public actor WAClient {
    /// Everything that happens, in order, for one consumer. State changes, QR codes,
    /// pairing codes, pairing, login, logout, offline sync and stop are never dropped
    /// (a bridge turns them into events its users rely on; they are few by nature).
    /// Messages, undecryptable messages, receipts and identity changes can come in
    /// floods: at most `configuration.eventBufferSize` of those wait for a slow
    /// consumer, the oldest of them dropped beyond it (they also reach the features'
    /// own handlers, e.g. `MessagingFeature(onMessage:onStatus:)`, which never drop).
    public nonisolated let events: AsyncStream<WAEvent>
    /// Every state transition, in order, never dropped: unbounded, since transitions are
    /// a few bytes each and paced by the connection itself (connect timeouts, reconnect backoff).
    public nonisolated let stateChanges: AsyncStream<StateTransition>
    private let eventSink: EventBuffer<WAEvent>
    private let stateSink: AsyncStream<StateTransition>.Continuation
    /// High-volume events dropped so far for a slow `events` consumer (logged, not silent).
    private var droppedEvents = 0

    public nonisolated let configuration: WAClientConfiguration
    private let store: any DeviceStore
    let features: [any WAClientFeature]
    private let logger: Logger
    private var machine: ConnectionMachine
    private(set) var device: DeviceRecord?
    private var runTask: Task<Void, Never>?
    private var stopRequested = false

    // The current link (nil between connections).
    private struct Link {
        let transport: WebSocketTransport
        var session: NoiseSession
        let generation: Int
    }
    private var link: Link?
    private var generation = 0
    private var closeReason: CloseReason?
    private var keepaliveTask: Task<Void, Never>?
    /// When the server last sent a frame, and last answered a keepalive ping (this link).
    private var lastInbound: ContinuousClock.Instant?
    private var lastPingAnswer: ContinuousClock.Instant = .now
    /// Keepalive pings left unanswered in a row on this link and tolerated because
    /// the server sent other frames meanwhile (0 after an answered ping).
    public private(set) var keepaliveMisses = 0

    // IQs.
    private struct PendingIQ {
        let continuation: CheckedContinuation<Node, any Error>
        let timer: Task<Void, Never>
    }
    private var pendingIQs: [String: PendingIQ] = [:]
    private let iqPrefix = String(UInt32.random(in: 0...UInt32.max), radix: 16)
    private var iqCounter: UInt64 = 0

    // Login and pairing.
    private var loggedIn: LoginInfo?
    private var awaitingPairing = false
    private var qrTask: Task<Void, Never>?
    private var qrSinks: [AsyncThrowingStream<QRLoginEvent, any Error>.Continuation] = []
    private var currentQR: QRCode?
    private var codeSession: Pairing.CodeSession?
    private var waiters: [UUID: Waiter] = [:]
    private var history: [StateTransition] = []

    private enum Waiter {
        case state(ConnectionState, CheckedContinuation<Void, any Error>)
        case pairingReady(CheckedContinuation<Void, any Error>)
    }

    /// - Parameters:
    ///   - features: phase-2 features (messages, receipts, prekeys…) the router hands stanzas to.
    public init(
        store: any DeviceStore, configuration: WAClientConfiguration = WAClientConfiguration(),
        features: [any WAClientFeature] = [], logger: Logger = Logger(label: "wabridge.waclient")
    ) {
        self.store = store
        self.features = features
        self.configuration = configuration
        self.logger = logger
        self.machine = ConnectionMachine(policy: configuration.reconnect)
        let buffer = EventBuffer<WAEvent>(limit: configuration.eventBufferSize, isDroppable: { $0.isHighVolume })
        (events, eventSink) = (buffer.stream, buffer)
        (stateChanges, stateSink) = AsyncStream.makeStream(bufferingPolicy: .unbounded)
    }

    deinit {
        // Consumers of the streams see them end instead of waiting forever.
        eventSink.finish()
        stateSink.finish()
    }

    // MARK: Public API

    public var state: ConnectionState { machine.state }
    /// The last transitions (at most 64), oldest first.
    public var recentTransitions: [StateTransition] { history }
    /// Who we are, once logged in on the current link.
    public var loginInfo: LoginInfo? { loggedIn }
    public var isStopped: Bool { machine.isStopped }

    /// Connects and keeps connected. A device with no record gets fresh keys and registers.
    public func start() async throws {
        guard machine.isStopped, runTask == nil else { return }
        if device == nil { device = try await loadDevice() }
        stopRequested = false
        runTask = Task { await self.runLoop() }
    }

    /// Disconnects for good (until `start()` again).
    public func stop() async {
        stopRequested = true
        link?.transport.close()
        let task = runTask
        task?.cancel()
        await task?.value
    }

    /// Starts (if needed) and yields QR codes until the phone scans one and login succeeds.
    /// Throws `client.qr_timeout` when every ref expired, `client.already_logged_in` for a paired device.
    public func loginWithQR() -> AsyncThrowingStream<QRLoginEvent, any Error> {
        let (stream, sink) = AsyncThrowingStream<QRLoginEvent, any Error>.makeStream(bufferingPolicy: .bufferingNewest(16))
        if device?.isRegistered == true {
            sink.finish(throwing: WAClientError(.alreadyLoggedIn, "device is already paired"))
            return stream
        }
        guard qrSinks.count < 8 else {
            sink.finish(throwing: WAClientError(.overloaded, "too many QR login streams"))
            return stream
        }
        qrSinks.append(sink)
        // A consumer that arrives while a code is showing gets it at once.
        if let current = currentQR { sink.yield(.code(current)) }
        Task { do { try await self.start() } catch { sink.finish(throwing: error) } }
        return stream
    }

    /// Asks for a pairing code for `phoneNumber` (international format). Returns `XXXX-XXXX`
    /// to type on the phone; login then completes by itself (watch `events` or `waitForState`).
    public func pairWithCode(phoneNumber: String) async throws -> String {
        let phone = try Pairing.normalizePhoneNumber(phoneNumber)
        if device == nil { device = try await loadDevice() }
        guard device?.isRegistered != true else { throw WAClientError(.alreadyLoggedIn, "device is already paired") }
        try await start()
        try await waitForPairingReady(timeout: configuration.connectTimeout * 2)
        guard let device else { throw WAClientError(.notConnected, "no device") }
        var session = Pairing.CodeSession(phone: phone)
        let hello = try session.helloNode(device: device, platformName: "Chrome (Linux)")
        let answer = try await sendIQ(Node("iq", [
            Attribute("to", .jid(.serverJID)), Attribute("type", "set"), Attribute("xmlns", "md"),
        ], content: .nodes([hello])))
        guard let ref = answer.child(path: "link_code_companion_reg", "link_code_pairing_ref")?.bytes else {
            throw WAClientError(.pairingFailed, "companion_hello answer has no pairing ref")
        }
        session.ref = Data(ref)
        codeSession = session
        emit(.pairingCode(session.code.displayed))
        return session.code.displayed
    }

    /// Waits until the state is `state` (returns at once if it already is).
    public func waitForState(_ state: ConnectionState, timeout: Duration) async throws {
        if machine.state == state { return }
        try await wait(timeout: timeout) { .state(state, $0) }
    }

    /// Sends an IQ and waits for its `result` (an `error` answer throws `client.iq_error`).
    public func sendIQ(_ iq: Node, timeout: Duration? = nil) async throws -> Node {
        guard link != nil else { throw WAClientError(.notConnected, "no live connection") }
        guard pendingIQs.count < configuration.maxPendingIQs else {
            throw WAClientError(.overloaded, "\(pendingIQs.count) IQs already wait for answers")
        }
        var node = iq
        let id = node.string("id") ?? nextID()
        node["id"] = .string(id)
        let bound = timeout ?? configuration.iqTimeout
        return try await withCheckedThrowingContinuation { continuation in
            let timer = Task { [weak self] in
                try? await Task.sleep(for: bound)
                guard !Task.isCancelled else { return }
                await self?.resolveIQ(id, .failure(WAClientError(.timeout, "no answer to IQ \(id) within \(bound)")))
            }
            pendingIQs[id] = PendingIQ(continuation: continuation, timer: timer)
            do { try send(node) } catch { resolveIQ(id, .failure(error)) }
        }
    }

    /// Sends one stanza on the live link.
    public func send(_ node: Node) throws {
        guard link != nil else { throw WAClientError(.notConnected, "no live connection") }
        if let owns = configuration.ownership, !owns() {
            link?.transport.close()
            throw WAClientError(.notOwner, "this worker no longer owns the device; <\(node.tag)> not sent")
        }
        let bytes: [UInt8]
        do { bytes = try BinaryEncoder.encode(node) } catch {
            throw WAClientError(.badStanza, "could not encode <\(node.tag)>: \(error)")
        }
        let frame = try link!.session.seal(TransportPayload.encode(bytes))
        link!.transport.send(frame)
    }

    // MARK: Run loop

    private func runLoop() async {
        var actions = machine.handle(.start)
        while true {
            var delay: Duration?
            for action in actions {
                switch action {
                case .emit(let transition): publish(transition)
                case .connect(let after): delay = after
                case .wipeStore: await wipeStore()
                case .stop(let reason): finishStopped(reason)
                }
            }
            guard let delay, !machine.isStopped else { break }
            if delay > .zero { try? await Task.sleep(for: delay) }
            if stopRequested || Task.isCancelled {
                actions = machine.handle(.closed(.ownerStopped), jitterUnit: Double.random(in: 0...1))
            } else {
                let ended = await runConnection()
                actions = machine.handle(.closed(stopRequested ? .ownerStopped : ended), jitterUnit: Double.random(in: 0...1))
                // What waited on this link (sends awaiting their ack) will not get an answer. Told
                // after the state left `connected`: a caller whose send failed must not still read
                // `connected` and send again into no link.
                for feature in features { await feature.linkClosed(client: self) }
            }
        }
        runTask = nil
    }

    /// One connection: open, handshake, read until it ends; returns why it ended.
    private func runConnection() async -> CloseReason {
        generation += 1
        let gen = generation
        closeReason = nil
        loggedIn = nil
        guard let device else { return .transportLost("no device record") }
        let payload: Data
        do {
            payload = device.isRegistered
                ? try ClientPayloadBuilder.login(device, configuration: configuration, lidDbMigrated: store is any LIDMappingStore)
                : try ClientPayloadBuilder.registration(device, configuration: configuration)
        } catch {
            return .transportLost("payload: \(error)")
        }
        if let owns = configuration.ownership, !owns() {
            return .transportLost("this worker no longer owns the device")
        }
        let transport: WebSocketTransport
        do {
            let configuration = self.configuration
            transport = try await withTimeout(configuration.connectTimeout) {
                try await WebSocketTransport.connect(
                    url: configuration.endpoint, origin: configuration.origin,
                    tlsTrustRoots: configuration.tlsTrustRoots, maxFrameSize: configuration.maxFrameSize,
                    backlog: configuration.maxInboundBacklog)
            }
        } catch {
            return .transportLost(Self.describe(error))
        }
        if stopRequested { transport.close(); return .ownerStopped }

        let verifier = configuration.noiseTrustRoot.map { CertChainVerifier(trustRoot: $0) } ?? .whatsApp
        var initiator = NoiseInitiator(
            staticKey: device.noiseKey, clientPayload: payload, verifier: verifier, maxFrameSize: configuration.maxFrameSize,
            routingInfo: edgeRoutingInfo)
        let watchdog = Task { [configuration] in
            try? await Task.sleep(for: configuration.connectTimeout)
            if !Task.isCancelled { transport.close() }
        }
        defer { watchdog.cancel() }
        do {
            guard case .send(let hello) = try initiator.start() else { return .transportLost("handshake") }
            transport.send(hello)
        } catch {
            transport.close()
            return .transportLost(Self.describe(error))
        }

        var handshaking = true
        for await chunk in transport.inbound {
            if handshaking {
                do {
                    for action in try initiator.receive(chunk) {
                        switch action {
                        case .send(let bytes): transport.send(bytes)
                        case .established(let result):
                            handshaking = false
                            watchdog.cancel()
                            link = Link(transport: transport, session: result.session, generation: gen)
                            for plaintext in result.earlyPlaintexts { await process(plaintext, gen: gen) }
                        }
                    }
                } catch {
                    closeReason = .transportLost(Self.describe(error))
                }
            } else {
                do {
                    guard link?.generation == gen else { break }
                    let plaintexts = try link!.session.receive(chunk)
                    for plaintext in plaintexts {
                        await process(plaintext, gen: gen)
                        if closeReason != nil { break }
                    }
                } catch {
                    closeReason = .transportLost(Self.describe(error))
                }
            }
            if closeReason != nil || stopRequested { break }
        }
        transport.close()
        teardownLink(gen)
        if handshaking && closeReason == nil { return .transportLost("closed during handshake") }
        return closeReason ?? .transportLost("connection closed")
    }

    private func teardownLink(_ gen: Int) {
        guard link == nil || link?.generation == gen else { return }
        link = nil
        keepaliveTask?.cancel()
        keepaliveTask = nil
        qrTask?.cancel()
        qrTask = nil
        currentQR = nil
        awaitingPairing = false
        loggedIn = nil
        for id in Array(pendingIQs.keys) {
            resolveIQ(id, .failure(WAClientError(.connectionClosed, "connection closed before the answer")))
        }
    }

    private func process(_ plaintext: Data, gen: Int) async {
        lastInbound = .now
        let node: Node
        do {
            let bytes = try TransportPayload.decode(plaintext, maxInflatedSize: configuration.maxFrameSize * 4)
            node = try BinaryDecoder.decode([UInt8](bytes))
        } catch {
            closeReason = .transportLost("undecodable stanza: \(Self.describe(error))")
            return
        }
        await handle(node, gen: gen)
    }

    // MARK: Stanza router (phase 2 adds message, receipt, call handlers here)

    private func handle(_ node: Node, gen: Int) async {
        switch node.tag {
        case "iq": await handleIQ(node, gen: gen)
        case "success": await handleSuccess(node, gen: gen)
        case "failure": closeReason = StreamOutcome.failure(node)
        case "stream:error": closeReason = StreamOutcome.streamError(node)
        case "xmlstreamend": closeReason = .transportLost("stream ended by server")
        case "ib":
            handleIB(node)
            if node.child("offline") != nil { for feature in features { await feature.offlineSyncCompleted(client: self) } }
        case "notification" where Self.pairingNotificationTypes.contains(node.string("type") ?? ""):
            handleNotification(node) // pairing stays in the core, whatever features claim
        default:
            if let feature = features.first(where: { $0.stanzaTags.contains(node.tag) }) {
                await feature.handle(node, client: self)
                return
            }
            switch node.tag {
            case "notification": handleNotification(node)
            case "receipt", "call": sendAck(for: node)
            default: logger.debug("unhandled stanza", metadata: ["tag": "\(node.tag)"])
            }
        }
    }

    private func handleIQ(_ node: Node, gen: Int) async {
        let type = node.string("type")
        if type == "result" || type == "error", let id = node.string("id"), pendingIQs[id] != nil {
            if type == "result" {
                resolveIQ(id, .success(node))
            } else {
                let error = node.child("error")
                let text = "IQ error \(error?.string("code") ?? "?") \(error?.string("text") ?? "")"
                resolveIQ(id, .failure(WAClientError(.iqError, text)))
            }
            return
        }
        guard let id = node.string("id") else { return }
        if type == "get", node.string("xmlns") == "urn:xmpp:ping" {
            try? send(Node("iq", [Attribute("to", .jid(.serverJID)), Attribute("id", .string(id)), Attribute("type", "result")]))
            return
        }
        // Pairing stanzas count only from the server itself (as whatsmeow checks).
        let fromServer = node.jid("from") == .serverJID
        if fromServer, let pairDevice = node.child("pair-device") {
            try? send(Node("iq", [Attribute("to", .jid(.serverJID)), Attribute("id", .string(id)), Attribute("type", "result")]))
            let refs = pairDevice.children("ref").compactMap(\.text)
            startPairing(refs: refs, gen: gen)
            return
        }
        if fromServer, let success = node.child("pair-success") {
            await handlePairSuccess(success, id: id)
            return
        }
        if let xmlns = node.string("xmlns"), let feature = features.first(where: { $0.iqNamespaces.contains(xmlns) }) {
            await feature.handle(node, client: self)
        }
    }

    private func handleSuccess(_ node: Node, gen: Int) async {
        guard var device, let jid = device.jid else { return }
        if let lid = node.jid("lid"), lid != device.lid {
            device.lid = lid
            self.device = device
            // The LID is used from memory at once; every `<success>` carries it, so a write that
            // fails now is made again at the next login. It is logged, not hidden.
            do { try await store.saveDevice(device) } catch {
                logger.error("own LID not saved; kept in memory until the next login",
                             metadata: ["error": "\(Self.describe(error))"])
            }
        }
        let info = LoginInfo(jid: jid, lid: device.lid, pushName: device.pushName, platform: device.platform)
        loggedIn = info
        for action in machine.handle(.loggedIn) {
            if case .emit(let transition) = action { publish(transition) }
        }
        emit(.loggedIn(info))
        for sink in qrSinks {
            sink.yield(.success(info))
            sink.finish()
        }
        qrSinks = []
        startKeepalive(gen: gen)
        Task { await self.afterLogin(gen: gen) }
        for feature in features {
            Task { await feature.didLogin(info, client: self) }
        }
    }

    /// What every client does once logged in; features add theirs in `didLogin` (prekeys, …).
    private func afterLogin(gen: Int) async {
        guard link?.generation == gen else { return }
        do {
            let answer = try await sendIQ(Node("iq", [
                Attribute("to", .jid(.serverJID)), Attribute("type", "set"), Attribute("xmlns", "passive"),
            ], content: .nodes([Node("active")])))
            try IQStanza.checkResult(answer, "passive active")
        } catch {
            // Without it the server may keep treating the link as passive (no offline delivery):
            // said loudly; the next connection sends it again.
            guard link?.generation == gen else { return }
            logger.warning("passive/active iq failed", metadata: ["error": "\(Self.describe(error))"])
        }
    }

    /// `<ib>` children, as whatsmeow's handleIB (connectionevents.go) and Baileys' socket.ts read them.
    private func handleIB(_ node: Node) {
        for child in node.children {
            switch child.tag {
            case "offline":
                emit(.offlineSyncCompleted(count: child.int("count") ?? 0))
            case "offline_preview":
                emit(.offlineSyncPreview(OfflineSyncPreview(
                    total: child.int("count") ?? 0, appDataChanges: child.int("appdata") ?? 0,
                    messages: child.int("message") ?? 0, notifications: child.int("notification") ?? 0,
                    receipts: child.int("receipt") ?? 0)))
            case "dirty":
                // The server marks a kind of state (account_sync, groups) dirty; the client says it is
                // clean again (whatsmeow appstate.go MarkNotDirty, Baileys cleanDirtyBits).
                guard let kind = child.string("type"), !kind.isEmpty else {
                    logger.info("ib dirty without a type ignored")
                    continue
                }
                var clean = Node("clean", [Attribute("type", .string(kind))])
                if let ts = child.int("timestamp") { clean["timestamp"] = .string(String(ts)) }
                let iq = Node("iq", [
                    Attribute("to", .jid(.serverJID)), Attribute("type", "set"), Attribute("xmlns", "urn:xmpp:whatsapp:dirty"),
                ], content: .nodes([clean]))
                Task { [logger] in
                    do { _ = try await self.sendIQ(iq) } catch {
                        logger.info("dirty bit not cleaned", metadata: ["type": "\(kind)", "error": "\(Self.describe(error))"])
                    }
                }
            case "edge_routing":
                // Sent in the next connection's `ED` preamble (Baileys noise-handler.ts; whatsmeow
                // ignores it). Kept in memory only. Bounded: the server sends a few dozen bytes.
                if let info = child.child("routing_info")?.bytes, !info.isEmpty, info.count <= FrameCodec.maxRoutingInfo {
                    edgeRoutingInfo = Data(info)
                    logger.debug("edge routing info stored", metadata: ["bytes": "\(info.count)"])
                }
            case "downgrade_webclient":
                // The phone scanned our QR without multi-device (whatsmeow: QRScannedWithoutMultidevice).
                logger.warning("the phone scanned the QR code without multi-device support")
                emit(.qrScannedWithoutMultidevice)
            default:
                logger.info("unhandled ib child", metadata: ["tag": "\(child.tag)"])
            }
        }
    }

    /// The routing info of the last `<ib><edge_routing>` (nil until one came).
    public private(set) var edgeRoutingInfo: Data?

    /// Acks a notification, receipt or call (`<ack id class to [type] [participant] [recipient]>`); for features.
    public func ack(_ node: Node) { sendAck(for: node) }

    /// Notifications of the pairing flows: pairing code, and passkey linking (refused).
    static let pairingNotificationTypes: Set<String> = ["link_code_companion_reg", "passkey_prologue_request", "crsc_continuation"]

    private func handleNotification(_ node: Node) {
        sendAck(for: node)
        let type = node.string("type")
        if type == "link_code_companion_reg", node.jid("from") == .serverJID,
           let reg = node.child("link_code_companion_reg") {
            Task { await self.handleCodePairing(reg) }
        } else if type == "passkey_prologue_request" || type == "crsc_continuation" {
            // Passkey linking (whatsmeow pair-passkey.go) needs a WebAuthn authenticator, which a bridge
            // has not: refused with a typed event instead of ignored. QR and code pairing go on.
            guard node.jid("from") == .serverJID else {
                logger.warning("passkey notification from a non-server JID ignored")
                return
            }
            let error = WAClientError(.passkeyUnsupported, "passkey linking is not supported; pair by QR code or pairing code")
            logger.warning("passkey pairing refused", metadata: ["code": "\(error.code)", "stage": "\(type ?? "")"])
            emit(.pairingRefused(code: error.code.rawValue, reason: error.message))
        }
    }

    private func sendAck(for node: Node) {
        guard let id = node.string("id"), let from = node["from"] else { return }
        var ack = Node("ack", [Attribute("id", .string(id)), Attribute("class", .string(node.tag)), Attribute("to", from)])
        if node.tag != "message", let type = node.string("type") { ack["type"] = .string(type) }
        if let participant = node["participant"] { ack["participant"] = participant }
        // As whatsmeow's sendAck (receipt.go): a stanza naming a recipient (our own devices' copies) is acked with it.
        if let recipient = node["recipient"] { ack["recipient"] = recipient }
        try? send(ack)
    }

    // MARK: Pairing

    private func startPairing(refs: [String], gen: Int) {
        awaitingPairing = true
        resumeWaiters { if case .pairingReady = $0 { return true } else { return false } }
        emitTransitionless(.awaitingPairing)
        guard let device, !refs.isEmpty else { return }
        let configuration = self.configuration
        qrTask?.cancel()
        qrTask = Task { [weak self] in
            for (index, ref) in refs.enumerated() {
                let validFor = index == 0 ? configuration.qrFirstTimeout : configuration.qrLaterTimeout
                let text = Pairing.qrString(ref: ref, device: device, linkFormat: configuration.qrLinkFormat)
                await self?.publishQR(QRCode(text: text, validFor: validFor, index: index))
                try? await Task.sleep(for: validFor)
                if Task.isCancelled { return }
            }
            await self?.qrExhausted(gen: gen)
        }
    }

    private func publishQR(_ code: QRCode) {
        currentQR = code
        emit(.qr(code))
        for sink in qrSinks { sink.yield(.code(code)) }
    }

    private func qrExhausted(gen: Int) {
        guard link?.generation == gen, codeSession == nil, !qrSinks.isEmpty else { return }
        for sink in qrSinks { sink.finish(throwing: WAClientError(.qrTimeout, "no QR code was scanned in time")) }
        qrSinks = []
        closeReason = .qrTimeout
        link?.transport.close()
    }

    private func handlePairSuccess(_ success: Node, id: String) async {
        guard let device else { return }
        let deviceNode = success.child("device")
        guard let identity = success.child("device-identity")?.bytes, let jid = deviceNode?.jid("jid") else {
            sendPairError(id: id, code: 500, text: "internal-error")
            return
        }
        let platform = success.child("platform")?.string("name") ?? ""
        let business = success.child("biz")?.string("name") ?? ""
        let result: Pairing.PairResult
        do {
            result = try Pairing.handlePairSuccess(
                deviceIdentity: Data(identity), device: device, jid: jid, lid: deviceNode?.jid("lid"),
                platform: platform, businessName: business)
        } catch {
            logger.warning("pair-success refused", metadata: ["code": "\(error.code)", "reason": "\(error.text)"])
            sendPairError(id: id, code: error.code, text: error.text)
            return
        }
        do {
            try await store.saveDevice(result.device)
        } catch {
            sendPairError(id: id, code: 500, text: "internal-error")
            return
        }
        self.device = result.device
        codeSession = nil
        qrTask?.cancel()
        qrTask = nil
        currentQR = nil
        try? send(Node("iq", [
            Attribute("to", .jid(.serverJID)), Attribute("type", "result"), Attribute("id", .string(id)),
        ], content: .nodes([Node("pair-device-sign", content: .nodes([
            Node("device-identity", [Attribute("key-index", .string(String(result.keyIndex)))],
                 content: .bytes([UInt8](result.signedIdentity))),
        ]))])))
        emit(.paired(jid: jid, lid: result.device.lid, platform: platform, businessName: business))
    }

    private func sendPairError(id: String, code: Int, text: String) {
        try? send(Node("iq", [
            Attribute("to", .jid(.serverJID)), Attribute("type", "error"), Attribute("id", .string(id)),
        ], content: .nodes([Node("error", [Attribute("code", .string(String(code))), Attribute("text", .string(text))])])))
    }

    private func handleCodePairing(_ reg: Node) async {
        guard reg.string("stage") == "primary_hello", let session = codeSession, var device,
              let ref = reg.child("link_code_pairing_ref")?.bytes, Data(ref) == session.ref,
              let wrapped = reg.child("link_code_pairing_wrapped_primary_ephemeral_pub")?.bytes,
              let primaryIdentity = reg.child("primary_identity_pub")?.bytes
        else { return }
        do {
            let (finish, advSecret) = try session.finish(
                wrappedPrimaryEphemeral: Data(wrapped), primaryIdentity: Data(primaryIdentity), device: device)
            device.advSecret = advSecret
            self.device = device
            try await store.saveDevice(device)
            _ = try await sendIQ(Node("iq", [
                Attribute("to", .jid(.serverJID)), Attribute("type", "set"), Attribute("xmlns", "md"),
            ], content: .nodes([finish])))
        } catch {
            // Surfaced, not only logged: the login cannot complete, a new pairing code is needed.
            logger.warning("pairing-code finish failed", metadata: ["error": "\(Self.describe(error))"])
            let code = (error as? WAClientError)?.code ?? .pairingFailed
            emit(.pairingRefused(code: code.rawValue, reason: "the pairing code could not be finished; request a new one"))
        }
    }

    // MARK: Keepalive

    private func startKeepalive(gen: Int) {
        keepaliveTask?.cancel()
        let policy = configuration.keepalive
        keepaliveMisses = 0
        lastPingAnswer = .now
        keepaliveTask = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: policy.interval(unit: Double.random(in: 0...1)))
                if Task.isCancelled { return }
                guard let self else { return }
                if await !self.ping(gen: gen, policy: policy) { return }
            }
        }
    }

    /// One keepalive ping; false when the link is gone or declared dead.
    ///
    /// An unanswered ping closes the link only when nothing else came from the
    /// server while it waited, or when no ping was answered for `maxFailTime`:
    /// one lost ping does not tear down a link that otherwise shows life (as
    /// whatsmeow, which reconnects only after 3 minutes of failed pings), while a
    /// silent server is still detected within `detectionBound`.
    private func ping(gen: Int, policy: KeepalivePolicy) async -> Bool {
        guard link?.generation == gen else { return false }
        let sent = ContinuousClock.now
        do {
            _ = try await sendIQ(Node("iq", [
                Attribute("to", .jid(.serverJID)), Attribute("type", "get"), Attribute("xmlns", "w:p"),
            ], content: .nodes([Node("ping")])), timeout: policy.timeout)
            pingAnswered()
            return true
        } catch let error as WAClientError where error.code == .iqError {
            pingAnswered() // an error answer still proves the link is alive
            return true
        } catch let error as WAClientError where error.code == .timeout {
            guard link?.generation == gen else { return false }
            if let life = lastInbound, life > sent, ContinuousClock.now - lastPingAnswer < policy.maxFailTime {
                keepaliveMisses += 1
                logger.info("keepalive ping unanswered; the link shows life, keeping it",
                            metadata: ["missed": "\(keepaliveMisses)"])
                return true
            }
            logger.info("keepalive timed out; closing the link", metadata: ["missed": "\(keepaliveMisses + 1)"])
            closeReason = .keepaliveTimeout
            link?.transport.close()
            return false
        } catch {
            return false
        }
    }

    private func pingAnswered() {
        lastPingAnswer = .now
        keepaliveMisses = 0
    }

    // MARK: Helpers

    private func loadDevice() async throws -> DeviceRecord {
        do {
            if let record = try await store.loadDevice() { return record }
            let record = DeviceRecord.generate()
            try await store.saveDevice(record)
            return record
        } catch let error as WAClientError {
            throw error
        } catch {
            throw WAClientError(.store, "device store: \(error)")
        }
    }

    private func wipeStore() async {
        do { try await store.wipe() } catch {
            logger.error("could not wipe the device store", metadata: ["error": "\(error)"])
        }
        device = nil
    }

    private func finishStopped(_ reason: StopReason) {
        if case .loggedOut(let why) = reason { emit(.loggedOut(why)) }
        if case .banned(let failure) = reason, failure.kind == .locked || failure.kind == .banned {
            emit(.loggedOut(.failure(failure)))
        }
        emit(.stopped(reason))
        let error: WAClientError
        switch reason {
        case .qrTimeout: error = WAClientError(.qrTimeout, "no QR code was scanned in time")
        case .replaced: error = WAClientError(.replaced, "another connection took over this device")
        case .loggedOut: error = WAClientError(.loggedOut, "device logged out")
        case .banned: error = WAClientError(.banned, "account banned or locked")
        case .clientOutdated:
            error = WAClientError(.outdated, "client version refused")
            logger.error("WhatsApp refused this client version (405); set WABRIDGE_WA_VERSION to the current WhatsApp Web version",
                         metadata: ["version": "\(configuration.appVersionString)", "code": "CLIENT_OUTDATED"])
        case .refused(let failure):
            error = WAClientError(.loginRefused, "login refused: \(failure.reason) \(failure.code)")
            logger.error("WhatsApp refused the login; not retrying", metadata: ["reason": "\(failure.reason)", "code": "\(failure.code)"])
        case .ownerRequested, .gaveUp: error = WAClientError(.stopped, "client stopped")
        }
        for sink in qrSinks { sink.finish(throwing: error) }
        qrSinks = []
        resumeWaiters(throwing: error) { if case .pairingReady = $0 { return true } else { return false } }
    }

    private func publish(_ transition: StateTransition) {
        logger.info("state", metadata: ["from": "\(transition.from.rawValue)", "to": "\(transition.to.rawValue)", "reason": "\(transition.reason)"])
        history.append(transition)
        if history.count > 64 { history.removeFirst(history.count - 64) }
        stateSink.yield(transition)
        emit(.state(transition))
        let now = transition.to
        resumeWaiters { if case .state(let wanted, _) = $0 { return wanted == now } else { return false } }
    }

    private func emitTransitionless(_ reason: StateReason) {
        logger.debug("pairing", metadata: ["reason": "\(reason)"])
    }

    func emit(_ event: WAEvent) {
        guard eventSink.append(event) else { return }
        droppedEvents += 1
        // Once, then every 1000th: a flood must not turn into a flood of logs.
        if droppedEvents == 1 || droppedEvents % 1000 == 0 {
            logger.warning("events consumer too slow: oldest message events dropped",
                           metadata: ["dropped": "\(droppedEvents)", "limit": "\(configuration.eventBufferSize)"])
        }
    }

    private func nextID() -> String {
        iqCounter += 1
        return "\(iqPrefix).\(iqCounter)"
    }

    private func resolveIQ(_ id: String, _ result: Result<Node, any Error>) {
        guard let pending = pendingIQs.removeValue(forKey: id) else { return }
        pending.timer.cancel()
        pending.continuation.resume(with: result)
    }

    private func waitForPairingReady(timeout: Duration) async throws {
        if awaitingPairing { return }
        try await wait(timeout: timeout) { .pairingReady($0) }
    }

    private func wait(timeout: Duration, _ make: (CheckedContinuation<Void, any Error>) -> Waiter) async throws {
        guard waiters.count < 1024 else { throw WAClientError(.overloaded, "too many waiters") }
        let key = UUID()
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            waiters[key] = make(continuation)
            Task { [weak self] in
                try? await Task.sleep(for: timeout)
                await self?.expireWaiter(key)
            }
        }
    }

    private func expireWaiter(_ key: UUID) {
        guard let waiter = waiters.removeValue(forKey: key) else { return }
        let error = WAClientError(.timeout, "condition not reached in time")
        switch waiter {
        case .state(_, let c), .pairingReady(let c): c.resume(throwing: error)
        }
    }

    private func resumeWaiters(throwing error: (any Error)? = nil, where matches: (Waiter) -> Bool) {
        for (key, waiter) in waiters where matches(waiter) {
            waiters.removeValue(forKey: key)
            switch waiter {
            case .state(_, let c), .pairingReady(let c):
                if let error { c.resume(throwing: error) } else { c.resume() }
            }
        }
    }

    static func describe(_ error: any Error) -> String {
        if let e = error as? WAClientError { return e.description }
        return String(describing: error)
    }
}

/// Runs `operation`, failing with `client.timeout` after `timeout`.
func withTimeout<T: Sendable>(_ timeout: Duration, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await Task.sleep(for: timeout)
            throw WAClientError(.timeout, "no result within \(timeout)")
        }
        defer { group.cancelAll() }
        guard let first = try await group.next() else { throw WAClientError(.timeout, "cancelled") }
        return first
    }
}
