import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOWebSocket
import ServiceLifecycle
import WAClient
import WABinary
import WACrypto
import WAProto
import WASignal

/// A WhatsApp server simulator speaking the real wire protocol on loopback:
/// WebSocket `/ws/chat`, the WA header, Noise XX as responder with a
/// certificate chain under its own root, ClientPayload login and
/// registration, QR and pairing-code pairing with simulated phones, the
/// queries a client sends on connect, and faults on demand.
///
/// One actor owns the shared state (phones, devices, live connections,
/// pending refs and codes); each connection is its own actor.
public actor WASim {
    public struct Limits: Sendable {
        /// Largest WebSocket message and Noise frame from a client.
        public var maxFrameSize = 1 << 20
        /// A client must finish the Noise handshake within this.
        public var handshakeTimeout: Duration = .seconds(10)
        /// Inbound chunks buffered per connection before its socket is no longer read (backpressure).
        public var inboundBacklog = 256
        /// After a stream error or failure the server stops reading and closes the link this much
        /// later, unless the client closes first (as it should on 515, replaced, …).
        public var closeGrace: Duration = .seconds(1)
        /// Concurrent connections accepted; more are closed at once.
        public var maxConnections = 20_000
        /// Most stanzas (messages, receipts) kept per device until it acks them; beyond it the
        /// oldest is dropped (and counted in `droppedOfflineStanzas`).
        public var maxOutbox = 1_000
        /// Largest blob the media host takes (encrypted bytes).
        public var maxMediaBlob = 64 << 20
        /// Blobs and bytes the media host keeps (the oldest go first).
        public var maxMediaBlobs = 1_000
        public var maxMediaBytes = 512 << 20
        /// How long pair-device refs stay scannable: the first, then each later one on top
        /// (60 s + 5 × 20 s = 160 s in all, as a real client shows them).
        public var firstRefLifetime: Duration = .seconds(60)
        public var laterRefLifetime: Duration = .seconds(20)
        public init() {}
    }

    public struct Configuration: Sendable {
        public var host = "127.0.0.1"
        /// Plain `ws://` port (0 = any free port).
        public var port = 0
        /// When set, also a `wss://` listener on this port (0 = any) with `tls` or a minted certificate.
        public var tlsPort: Int?
        /// The loopback HTTP media host (`media_conn` points at it); 0: from the kernel, nil: none.
        public var mediaPort: Int? = 0
        public var tls: SimTLS?
        /// The Noise root; a fresh one per run when nil.
        public var root: Curve25519KeyPair?
        /// Clients below this `appVersion` get `<failure reason=405>`, as the real server answers
        /// stale builds before any QR. The default sits above the newest build reported refused
        /// (2.3000.1031716404, Jun 2026) and below whatsmeow's current 2.3000.1045649367: a client
        /// that ships a year-old version fails here as it would against WhatsApp.
        public var minimumAppVersion: [UInt32] = WASim.Configuration.currentMinimumAppVersion
        public static let currentMinimumAppVersion: [UInt32] = [2, 3000, 1_035_000_000]
        /// Tell other users' devices when a phone links or unlinks a device
        /// (`<notification type=devices>`), as the real server does. Off by default so a
        /// test can also leave a peer's device list stale (the phash path).
        public var announceDeviceChanges = false
        /// A phone, once it linked a device, sends it the app-state sync keys and a history-sync
        /// notification (peer messages), as a real phone does. On by default: every client runs under it.
        public var phoneSendsInitialSync = true
        /// The media host alters the blob of this chunk of the initial history sync (a tampering
        /// host or network): the client's hash check must refuse it. nil: none altered.
        public var corruptedHistoryChunk: SimHistoryChunk.Kind?
        /// The media host answers the first this many downloads with 503 (a host failing for a while).
        public var failingMediaDownloads = 0
        /// The phone's first key share leaves out the key its app-state patches are sealed with: the
        /// companion must ask for it (`appStateSyncKeyRequest`), and the phone answers with a share.
        public var phoneWithholdsAppStateKey = false
        /// A fresh device's first fetch of a collection (`version=0 return_snapshot=true`) is answered
        /// with the phone's latest snapshot (an external blob) instead of every patch.
        public var appStateSnapshots = true
        /// The phone seals its snapshots with a wrong MAC (one bit flipped): companions must refuse them.
        public var corruptAppStateSnapshots = false
        /// A patch whose mutations serialize to more than this many bytes carries them as an external
        /// blob (`externalMutations`). whatsmeow knows no fixed limit; 4 KiB (some 20 mutations) is
        /// small enough that tests cross it with one big patch and the initial upload stays inline.
        public var appStateExternalMutationsThreshold = 4096
        /// DMs to someone who never messaged the sender need a privacy token (`<tctoken>` or
        /// `<cstoken>`), else `<ack error=463>` (`Server/ServerPrivacyTokens.swift`).
        public var requirePrivacyTokens = true
        public var limits = Limits()
        public init() {}
    }

    public nonisolated let rootPublicKey: Curve25519PublicKey
    public nonisolated let tls: SimTLS?
    let configuration: Configuration
    private let staticKey = Curve25519KeyPair.generate()
    private let chain: Data
    let logger = Logger(label: "wabridge.sim")
    private var channels: [any Channel] = []
    public private(set) var port = 0
    public private(set) var tlsPort: Int?
    /// The media host's port once started (nil when disabled).
    public private(set) var mediaPort: Int?
    private var mediaTask: Task<Void, Never>?
    private var mediaGroup: ServiceGroup?
    /// The `auth` of `media_conn` answers; uploads must carry it.
    nonisolated let mediaAuth = Symmetric.randomBytes(24).base64EncodedString()
    let media: SimMediaStore

    var phones: [String: SimPhone] = [:]
    var devices: [JID: SimDevice] = [:]
    /// Linked devices whose keys the simulator holds, with no connection (`provisionHeadlessDevices`).
    var headless: [JID: SimHeadlessDevice] = [:]
    private var live: [JID: SimConnection] = [:]
    /// Per device: logins accepted, and how many of them found another live session of the
    /// device and replaced it (two clients logged in as one device at once, as WhatsApp sees it).
    private var sessionCounts: [JID: (logins: Int, replaced: Int)] = [:]
    private var connections: [Int: SimConnection] = [:]
    private var nextConnectionID = 0
    private var refs: [String: (connection: SimConnection, expires: ContinuousClock.Instant)] = [:]
    private var loginFaults: [JID: SimFault] = [:]
    private var slow: [JID: Duration] = [:]
    private var nextLID: UInt64 = 100_000_000_000_000
    var agents: [String: SimPhoneAgent] = [:]
    /// Groups by id (`Server/WASim+Groups.swift`); metadata queries answered per group.
    var groups: [String: SimGroup] = [:]
    var nextGroupID: UInt64 = 120_363_000_000_000_000
    var metadataQueries: [String: Int] = [:]
    /// Per device: stanzas delivered (or waiting to be) and not yet acked, oldest first.
    private var outbox: [JID: [Node]] = [:]
    /// Stanzas dropped because a device's outbox was full.
    public private(set) var droppedOfflineStanzas = 0
    private struct CodePairing {
        let connection: SimConnection
        let wrappedCompanion: Data
        let ref: Data
        var primaryEphemeral: Curve25519KeyPair?
        var code: PairingCode?
        var finish: CheckedContinuation<Data, any Error>?
    }
    private var codePairings: [String: CodePairing] = [:]
    private var cleanedDirty: [JID: [String]] = [:]
    private var receivedAcks: [JID: [Node]] = [:]
    /// Receipts each device sent (newest 256), for tests of which receipts a client sends.
    private var receivedReceipts: [JID: [Node]] = [:]
    private var routingInfoSeen: [JID: Data] = [:]
    /// What each phone sent a device it linked (`sendInitialSync`), and each phone's NCT salt.
    var initialSyncs: [JID: SimInitialSync] = [:]
    /// Initial syncs still being encrypted and queued: a login of that device waits for them, so
    /// its offline batch holds the whole sync (the phone sends it before the companion's restart).
    private var initialSyncsInFlight: [JID: Task<Void, Never>] = [:]
    var nctSalts: [String: Data] = [:]
    /// App state per account number and collection (`Server/ServerAppState.swift`), and what each
    /// phone keeps to build its patches (`Phone/WASim+AppState.swift`).
    var appStates: [String: [String: SimAppStateCollection]] = [:]
    var phoneAppStates: [String: SimPhoneAppState] = [:]
    var keyRequestsAnswered = 0
    /// Version-0 fetches answered with a snapshot, and fetches per collection (tests).
    var appStateSnapshotsServed = 0
    var appStateFetches: [String: Int] = [:]
    /// "from>to" (phone-number users): `from` has messaged `to` (so `to` may answer without a token).
    var chatted: Set<String> = []
    /// "issuer>holder": the token `issuer` issued to `holder`.
    var issuedPrivacyTokens: [String: IssuedPrivacyToken] = [:]
    /// "sender>peer>id" of DMs admitted by a token rule (a retry's resend passes again), bounded.
    var admittedIDs: Set<String> = []
    var admittedOrder: [String] = []
    /// DMs refused for want of a privacy token, and those admitted, by the rule that admitted them.
    public internal(set) var privacyTokenRefusals = 0
    public internal(set) var privacyTokenAdmissions: [String: Int] = [:]
    /// Message ids of the retry receipts that reached each phone (number), newest `maxRetriesSeen`.
    var retriesSeen: [String: [String]] = [:]
    static let maxRetriesSeen = 10_000
    /// What each phone holds for its linked devices' placeholder-resend requests, by message id.
    var placeholders: [String: [String: SimPlaceholder]] = [:]
    var placeholderOrder: [String: [String]] = [:]
    public internal(set) var placeholderRequestsAnswered = 0
    /// Peer data operation requests that reached a phone (answered or not), and the phones that never answer.
    public internal(set) var peerRequestsReceived = 0
    var silentPhones: Set<String> = []

    public init(configuration: Configuration = Configuration()) throws {
        self.configuration = configuration
        let root = configuration.root ?? .generate()
        rootPublicKey = root.publicKey
        chain = try CertChainIssuer(root: root).chain(for: staticKey.publicKey)
        tls = configuration.tlsPort == nil ? nil : try (configuration.tls ?? SimTLS.mint())
        media = SimMediaStore(maxBlobs: configuration.limits.maxMediaBlobs, maxBytes: configuration.limits.maxMediaBytes,
                              failingDownloads: configuration.failingMediaDownloads)
    }

    // MARK: Listening

    /// Binds the listeners; `port` (and `tlsPort`) are set when this returns.
    public func start() async throws {
        port = try await bind(port: configuration.port, tls: nil)
        if let tlsPort = configuration.tlsPort, let tls {
            self.tlsPort = try await bind(port: tlsPort, tls: try tls.serverContext())
        }
        if let wanted = configuration.mediaPort { mediaPort = try await startMediaHost(port: wanted) }
        logger.info("simulator listening", metadata: ["port": "\(port)", "tls_port": "\(tlsPort.map(String.init) ?? "-")"])
    }

    public nonisolated func endpoint(port: Int, secure: Bool = false) -> URL {
        URL(string: "\(secure ? "wss" : "ws")://127.0.0.1:\(port)/ws/chat")!
    }

    /// `ws://127.0.0.1:port/ws/chat`.
    public var endpoint: URL { endpoint(port: port) }
    /// `wss://localhost:tlsPort/ws/chat` (the minted certificate names localhost).
    public var secureEndpoint: URL? { tlsPort.map { URL(string: "wss://localhost:\($0)/ws/chat")! } }

    public func shutdown() async {
        for channel in channels { try? await channel.close() }
        channels = []
        for connection in connections.values { await connection.close() }
        await mediaGroup?.triggerGracefulShutdown()
        await mediaTask?.value
        mediaGroup = nil
        mediaTask = nil
    }

    /// Runs the media host (Hummingbird) until shutdown; returns its port.
    private func startMediaHost(port wanted: Int) async throws -> Int {
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        var logger = Logger(label: "wabridge.sim.media")
        logger.logLevel = .warning
        let app = Application(
            router: SimMediaHost.router(store: media, auth: mediaAuth, maxBlobBytes: configuration.limits.maxMediaBlob),
            configuration: .init(address: .hostname(configuration.host, port: wanted)),
            onServerRunning: { channel in
                continuation.yield(channel.localAddress?.port ?? 0)
                continuation.finish()
            },
            logger: logger)
        // A service group, so shutdown is graceful (cancelling the task makes the server log errors).
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], logger: logger))
        mediaGroup = group
        mediaTask = Task {
            try? await group.run()
            continuation.finish()  // a failed bind ends the wait below
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next(), port > 0 else {
            throw SimError("sim.media_host", "media host did not start on \(configuration.host):\(wanted)")
        }
        return port
    }

    /// The `media_conn` answer: the auth token and the media host (`127.0.0.1:port`).
    func mediaConnAnswer(to query: Node) -> Node {
        MediaConnection.answer(to: query, auth: mediaAuth, ttl: 3600, hosts: ["\(configuration.host):\(mediaPort ?? 0)"])
    }

    private func bind(port: Int, tls: NIOSSLContext?) async throws -> Int {
        let limits = configuration.limits
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.backlog, value: 256)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let tls { try sync.addHandler(NIOSSLServerHandler(context: tls)) }
                    let upgrader = NIOWebSocketServerUpgrader(
                        maxFrameSize: limits.maxFrameSize, automaticErrorHandling: true,
                        shouldUpgrade: { channel, head in
                            channel.eventLoop.makeSucceededFuture(head.uri.hasPrefix("/ws/chat") ? HTTPHeaders() : nil)
                        },
                        upgradePipelineHandler: { channel, _ in
                            channel.eventLoop.makeCompletedFuture {
                                let flow = InboundFlow(highWater: limits.inboundBacklog)
                                try channel.pipeline.syncOperations.addHandler(
                                    WebSocketInboundHandler(flow: flow, masks: false))
                                Task { await self.accept(channel: channel, inbound: flow.stream) }
                            }
                        })
                    let notFound = NotFoundHandler()
                    try sync.configureHTTPServerPipeline(withServerUpgrade: (
                        upgraders: [upgrader],
                        completionHandler: { context in
                            let sync = context.pipeline.syncOperations
                            if let handler = try? sync.handler(type: NotFoundHandler.self) {
                                sync.removeHandler(handler, promise: nil)
                            }
                        }))
                    try sync.addHandler(notFound)
                }
            }
        let channel = try await bootstrap.bind(host: configuration.host, port: port).get()
        channels.append(channel)
        return channel.localAddress?.port ?? port
    }

    private func accept(channel: any Channel, inbound: AsyncStream<Data>) async {
        guard connections.count < configuration.limits.maxConnections else {
            try? await channel.close()
            return
        }
        nextConnectionID += 1
        let connection = SimConnection(id: nextConnectionID, channel: channel, sim: self)
        connections[connection.id] = connection
        let (key, chain, limits) = (staticKey, self.chain, configuration.limits)
        Task { await connection.run(inbound: inbound, staticKey: key, chain: chain, limits: limits) }
    }

    func connectionEnded(_ connection: SimConnection) async {
        connections.removeValue(forKey: connection.id)
        refs = refs.filter { $0.value.connection !== connection }
        codePairings = codePairings.filter { $0.value.connection !== connection }
        if let device = await connection.device, live[device] === connection { live.removeValue(forKey: device) }
    }

    // MARK: Called by connections

    func accepts(version: [UInt32]) -> Bool {
        version.lexicographicallyPrecedes(configuration.minimumAppVersion) == false
    }

    func issueRefs(for connection: SimConnection) -> [String] {
        let issued = (0..<6).map { _ in "2@" + Symmetric.randomBytes(24).base64EncodedString() }
        let limits = configuration.limits
        let now = ContinuousClock.now
        for (index, ref) in issued.enumerated() {
            refs[ref] = (connection, now + limits.firstRefLifetime + limits.laterRefLifetime * index)
        }
        return issued
    }

    enum LoginResult {
        case success(lid: JID, offline: [Node])
        case failure(Node)
    }

    func login(_ jid: JID, noiseKey: Curve25519PublicKey, connection: SimConnection) async -> LoginResult {
        if let fault = loginFaults.removeValue(forKey: jid), case .failNextLogin(let reason, let code, let expire) = fault {
            return .failure(Self.failureNode(reason: reason, code: code, expire: expire))
        }
        guard let device = devices[jid], device.noiseKey == noiseKey else {
            return .failure(Node("failure", [Attribute("reason", "401"), Attribute("location", "sim")]))
        }
        if let sync = initialSyncsInFlight[jid] { await sync.value }
        sessionCounts[jid, default: (0, 0)].logins += 1
        if let previous = live[jid], previous !== connection {
            sessionCounts[jid, default: (0, 0)].replaced += 1
            await previous.sendAndClose(Node("stream:error", content: .nodes([Node("conflict", [Attribute("type", "replaced")])])))
        }
        live[jid] = connection
        routingInfoSeen[jid] = await connection.routingInfo
        if let delay = slow[jid] { await connection.setAnswerDelay(delay) }
        return .success(lid: device.lid, offline: outbox[jid] ?? [])
    }

    func preKeyCount(_ jid: JID) -> Int { devices[jid]?.uploadedPreKeys ?? 0 }

    /// Keeps a verified upload (`ServerPreKeys.verify`); a refused one changes nothing.
    func storeUpload(_ upload: ServerPreKeys.Upload, for jid: JID) throws(ServerPreKeys.Refusal) {
        guard var device = devices[jid] else { throw .notAcceptable("unknown device") }
        do { try ServerPreKeys.verify(upload, registeredIdentity: device.identityKey) } catch {
            logger.info("prekey upload refused", metadata: ["device": "\(jid)", "reason": "\(error.reason)"])
            throw error
        }
        for (id, key) in upload.preKeys where device.preKeys.count < SimDevice.maxPreKeys { device.preKeys[id] = key }
        device.signedPreKey = upload.signedPreKey
        devices[jid] = device
    }

    func codeRequested(phone: String, wrapped: Data, connection: SimConnection) -> Data {
        let ref = Data("2@".utf8) + Data(Symmetric.randomBytes(18).base64EncodedString().utf8)
        codePairings[phone] = CodePairing(connection: connection, wrappedCompanion: wrapped, ref: ref)
        return ref
    }

    func companionFinished(phone: String, ref: Data, bundle: Data) throws {
        guard var pairing = codePairings[phone], pairing.ref == ref, let finish = pairing.finish else {
            throw SimError.noPendingCode(phone)
        }
        pairing.finish = nil
        codePairings[phone] = pairing
        finish.resume(returning: bundle)
    }

    static func failureNode(reason: Int, code: Int?, expire: Int?) -> Node {
        var node = Node("failure", [Attribute("reason", .string(String(reason))), Attribute("location", "sim")])
        if let code { node["code"] = .string(String(code)) }
        if let expire { node["expire"] = .string(String(expire)) }
        return node
    }

    // MARK: Control surface (tests, HTTP control API)

    /// Creates a simulated phone (primary device) with its own account key and LID. `lidMigrated`
    /// (the default, as every account is by now): DMs to its phone number are refused.
    @discardableResult
    public func createPhone(number: String, pushName: String = "Sim User", platform: String = "android",
                            lidMigrated: Bool = true) -> SimPhone {
        if let phone = phones[number] { return phone }
        nextLID += 1
        var phone = SimPhone(number: number, lidUser: String(nextLID), pushName: pushName, accountKey: .generate(), platform: platform)
        phone.lidMigrated = lidMigrated
        phones[number] = phone
        agents[number] = try? SimPhoneAgent(phone: phone)
        return phone
    }

    public func phone(_ number: String) -> SimPhone? { phones[number] }

    /// Moves an account to LID addressing (or back): from now on the server refuses DMs to its
    /// phone number and its phone sends LID-addressed.
    public func setLIDMigrated(_ number: String, _ migrated: Bool) throws {
        guard phones[number] != nil else { throw SimError.unknownPhone(number) }
        phones[number]?.lidMigrated = migrated
    }

    /// The phone scans a QR string; returns the new linked device's JID once the client countersigned.
    public func scanQR(phone number: String, qr: String) async throws -> JID {
        guard phones[number] != nil else { throw SimError.unknownPhone(number) }
        let contents = try SimQRCode(scanning: qr)
        guard let entry = refs[contents.ref] else { throw SimError.unknownRef() }
        guard entry.expires > .now else { throw SimError("sim.ref_expired", "the QR ref has expired") }
        let connection = entry.connection
        guard await connection.peerStatic == contents.noiseKey,
              await connection.companionIdentity == contents.identityKey.rawRepresentation
        else { throw SimError.badQR("QR keys do not match the connection that holds the ref") }
        return try await link(phone: number, connection: connection, advSecret: contents.advSecret)
    }

    /// The phone's user types the pairing code shown by the client; returns the new device's JID.
    public func enterPairingCode(phone number: String, code text: String, timeout: Duration = .seconds(15)) async throws -> JID {
        guard let phone = phones[number] else { throw SimError.unknownPhone(number) }
        guard var pairing = codePairings[number] else { throw SimError.noPendingCode(number) }
        let code: PairingCode
        do { code = try PairingCode(text) } catch { throw SimError.pairingFailed("not a pairing code") }
        let companionEphemeral = try code.unwrap(pairing.wrappedCompanion)
        let primaryEphemeral = Curve25519KeyPair.generate()
        pairing.primaryEphemeral = primaryEphemeral
        pairing.code = code
        codePairings[number] = pairing
        let wrapped = try code.wrap(primaryEphemeral.publicKey)
        let connection = pairing.connection
        let bundle: Data = try await withCheckedThrowingContinuation { continuation in
            codePairings[number]?.finish = continuation
            Task {
                await connection.sendPrimaryHello(ref: pairing.ref, wrappedPrimaryEphemeral: wrapped, primaryIdentity: phone.accountKey.publicKey)
                try? await Task.sleep(for: timeout)
                self.expireCodePairing(number)
            }
        }
        // Open the key bundle as the phone would.
        guard bundle.count > 32 + 12 + 16, let companionIdentity = await connection.companionIdentity else {
            throw SimError.pairingFailed("key bundle too short")
        }
        let ephemeralShared = try primaryEphemeral.privateKey.sharedSecret(with: companionEphemeral)
        let salt = bundle.prefix(32)
        let nonce = bundle.dropFirst(32).prefix(12)
        let key = Symmetric.hkdfSHA256(
            inputKeyMaterial: ephemeralShared, salt: salt, info: Data("link_code_pairing_key_bundle_encryption_key".utf8),
            outputByteCount: 32)
        let plain: Data
        do { plain = try Symmetric.aesGCMOpen(bundle.dropFirst(44), key: key, nonce: nonce) } catch {
            throw SimError.pairingFailed("key bundle does not open (wrong code?)")
        }
        guard plain.count == 96, plain.prefix(32) == companionIdentity,
              plain.dropFirst(32).prefix(32) == phone.accountKey.publicKey.rawRepresentation
        else { throw SimError.pairingFailed("key bundle names other keys") }
        let identityShared = try phone.accountKey.privateKey.sharedSecret(
            with: try Curve25519PublicKey(rawRepresentation: companionIdentity))
        let advSecret = PairingCode.advSecret(
            ephemeralSharedSecret: ephemeralShared, identitySharedSecret: identityShared, advRandom: plain.suffix(32))
        codePairings.removeValue(forKey: number)
        return try await link(phone: number, connection: connection, advSecret: advSecret)
    }

    private func expireCodePairing(_ number: String) {
        if let finish = codePairings[number]?.finish {
            codePairings[number]?.finish = nil
            finish.resume(throwing: SimError.timeout("companion_finish"))
        }
    }

    private func link(phone number: String, connection: SimConnection, advSecret: Data) async throws -> JID {
        guard var phone = phones[number] else { throw SimError.unknownPhone(number) }
        let deviceID = phone.nextDeviceID
        let keyIndex = phone.nextKeyIndex
        phone.nextDeviceID += 1
        phone.nextKeyIndex += 1
        phones[number] = phone
        refs = refs.filter { $0.value.connection !== connection }
        let jid = JID(user: number, device: deviceID, server: JID.userServer)
        let lid = JID(user: phone.lidUser, device: deviceID, server: JID.lidServer)
        // The phone's app state (with its snapshots on the media host) exists before the link, as
        // on a real phone; made now, the device's first login cannot overtake the initial sync.
        if configuration.phoneSendsInitialSync { await uploadInitialAppState(phone: number, excluding: jid) }
        let device = try await connection.pair(phone: phone, deviceJID: jid, lid: lid, keyIndex: keyIndex, advSecret: advSecret)
        devices[jid] = device
        logger.info("device linked", metadata: ["device": "\(jid)"])
        if configuration.phoneSendsInitialSync {
            let sync = Task { await self.sendInitialSync(phone: number, to: jid) }
            initialSyncsInFlight[jid] = sync
            await sync.value
            initialSyncsInFlight[jid] = nil
        }
        if configuration.announceDeviceChanges { await announceDeviceChange(.add, device: jid) }
        return jid
    }

    /// Registers a companion device of `number` without pairing (the phone is created if needed):
    /// for load runs that need thousands of logins, not thousands of pairings. The device then
    /// logs in with `noiseKey` like a paired one. `signedPreKey` and `preKeys` stand for an earlier
    /// upload (a device restored from a store: it does not upload again while the server has enough);
    /// without them it has none until it uploads some.
    public func provisionDevice(phone number: String, noiseKey: Curve25519PublicKey, identityKey: Curve25519PublicKey,
                                registrationID: UInt32, signedPreKey: (id: UInt32, key: Data, signature: Data)? = nil,
                                preKeys: [UInt32: Data] = [:]) -> JID {
        var phone = createPhone(number: number)
        let deviceID = phone.nextDeviceID
        let keyIndex = phone.nextKeyIndex
        phone.nextDeviceID += 1
        phone.nextKeyIndex += 1
        phones[number] = phone
        let jid = JID(user: number, device: deviceID, server: JID.userServer)
        devices[jid] = SimDevice(
            jid: jid, lid: JID(user: phone.lidUser, device: deviceID, server: JID.lidServer), noiseKey: noiseKey,
            identityKey: identityKey, registrationID: registrationID, keyIndex: keyIndex,
            signedPreKey: signedPreKey ?? (1, Data(), Data()), preKeys: preKeys)
        return jid
    }

    /// The phone unlinks a device: `401` + `<conflict type=device_removed/>` on its live connection;
    /// later logins get `<failure reason=401>`.
    public func unlink(device jid: JID) async {
        devices.removeValue(forKey: jid)
        outbox.removeValue(forKey: jid)
        if configuration.announceDeviceChanges { await announceDeviceChange(.remove, device: jid) }
        if let connection = live.removeValue(forKey: jid) {
            await connection.sendAndClose(Node("stream:error", [Attribute("code", "401")], content: .nodes([
                Node("conflict", [Attribute("type", "device_removed")]),
            ])))
        }
    }

    /// A companion's `remove-companion-device` for itself: forgotten like an unlink, but its live
    /// connection gets no stream error (the client disconnects on its own after the answer).
    func companionRemovedItself(_ jid: JID) async {
        guard devices.removeValue(forKey: jid) != nil else { return }
        outbox.removeValue(forKey: jid)
        logger.info("companion removed itself", metadata: ["device": "\(jid)"])
        if configuration.announceDeviceChanges { await announceDeviceChange(.remove, device: jid) }
    }

    public enum DeviceChange: String, Sendable { case add, remove }

    /// Sends `<notification type=devices from=user [lid]><add|remove device_hash><device jid [lid]/>`
    /// to every linked device of the other users (kept in their outbox until acked), and
    /// `<notification type=account_sync><devices dhash><device jid/>…` to the user's own other devices. `device_hash`
    /// is the participant hash (v2) of the user's device list after the change.
    public func announceDeviceChange(_ change: DeviceChange, device jid: JID) async {
        let user = jid.nonAD
        let lidUser = phones[user.user].map { JID(user: $0.lidUser, server: JID.lidServer) }
        var deviceAttributes = [Attribute("jid", .jid(jid))]
        if let lidUser { deviceAttributes.append(Attribute("lid", .jid(JID(user: lidUser.user, device: jid.device, server: JID.lidServer)))) }
        var attributes = [
            Attribute("from", .jid(user)), Attribute("type", "devices"), Attribute("id", .string(MessageID.random())),
            Attribute("t", .string(String(nowSeconds))),
        ]
        if let lidUser { attributes.append(Attribute("lid", .jid(lidUser))) }
        let node = Node("notification", attributes, content: .nodes([
            Node(change.rawValue, [Attribute("device_hash", .string(ParticipantHash.v2(allDevices(of: user.user))))],
                 content: .nodes([Node("device", deviceAttributes)])),
        ]))
        for other in devices.keys where other.user != user.user { await deliver(node, to: other) }
        // The user's own other devices get the whole new list (`account_sync`).
        let own = allDevices(of: user.user)
        let sync = Node("notification", [
            Attribute("from", .jid(.serverJID)), Attribute("type", "account_sync"), Attribute("id", .string(MessageID.random())),
            Attribute("t", .string(String(nowSeconds))),
        ], content: .nodes([
            Node("devices", [Attribute("dhash", .string(ParticipantHash.v2(own)))],
                 content: .nodes(own.map { Node("device", [Attribute("jid", .jid($0))]) })),
        ]))
        for mine in devices.keys where mine.user == user.user && mine != jid { await deliver(sync, to: mine) }
    }

    /// Sends an `<ib>` with these children to the device's live connection (e.g. `<dirty type
    /// timestamp>`, `<edge_routing>`, `<offline_preview>`, `<downgrade_webclient>`). False when it is offline.
    @discardableResult
    public func sendIB(_ children: [Node], to jid: JID) async -> Bool {
        guard let connection = live[jid] else { return false }
        await connection.deliverNotification(Node("ib", content: .nodes(children)))
        return true
    }

    /// Sends a server notification to the device's live connection (not kept in its outbox). False when offline.
    @discardableResult
    public func sendNotification(_ node: Node, to jid: JID) async -> Bool {
        guard let connection = live[jid] else { return false }
        await connection.deliverNotification(node)
        return true
    }

    /// The edge routing info a device sent in its last login's `ED` preamble (nil: none).
    public func edgeRoutingInfo(receivedFrom jid: JID) -> Data? { routingInfoSeen[jid] }

    /// The newest acks a device sent (at most 256), oldest first.
    public func acks(from jid: JID) -> [Node] { receivedAcks[jid] ?? [] }

    /// The receipts `jid` sent (newest 256), as sent.
    public func receipts(from jid: JID) -> [Node] { receivedReceipts[jid] ?? [] }

    /// A device sent `<iq xmlns=urn:xmpp:whatsapp:dirty><clean type>`.
    func cleaned(_ kind: String, by jid: JID) {
        cleanedDirty[jid, default: []].append(kind)
        if cleanedDirty[jid]!.count > 64 { cleanedDirty[jid]!.removeFirst() }
    }

    /// The dirty bits a device marked clean, oldest first (the newest 64).
    public func dirtyCleaned(by jid: JID) -> [String] { cleanedDirty[jid] ?? [] }

    /// Injects a fault for one device.
    public func inject(_ fault: SimFault, device jid: JID) async {
        switch fault {
        case .failNextLogin:
            loginFaults[jid] = fault
        case .slowAnswers(let delay):
            slow[jid] = delay
            await live[jid]?.setAnswerDelay(delay)
        case .dropConnection:
            await live.removeValue(forKey: jid)?.close()
        case .streamError(let code):
            await live.removeValue(forKey: jid)?.sendAndClose(Node("stream:error", [Attribute("code", .string(String(code)))]))
        case .failNow(let reason, let code, let expire):
            await live.removeValue(forKey: jid)?.sendAndClose(Self.failureNode(reason: reason, code: code, expire: expire))
        case .ignorePings(let ignore):
            await live[jid]?.setIgnorePings(ignore)
        case .withholdAcks(let withhold):
            await live[jid]?.setWithholdAcks(withhold)
        case .rawBytes(let bytes):
            await live[jid]?.writeRaw(bytes)
        }
    }

    // MARK: Inspection

    public func linkedDevices(of number: String) -> [JID] {
        devices.keys.filter { $0.user == number }.sorted { $0.device < $1.device }
    }
    public func isOnline(_ jid: JID) -> Bool { live[jid] != nil }
    /// Logins of the device accepted so far.
    public func loginCount(_ jid: JID) -> Int { sessionCounts[jid]?.logins ?? 0 }
    /// Logins of the device that replaced a session of it still open (`conflict type=replaced`).
    public func replacedSessionCount(_ jid: JID) -> Int { sessionCounts[jid]?.replaced ?? 0 }
    public func device(_ jid: JID) -> SimDevice? { devices[jid] }
    public var connectionCount: Int { connections.count }
    /// Companion devices registered (paired or provisioned).
    public var deviceCount: Int { devices.count }
    /// Refs currently offered to registering clients.
    public var liveRefCount: Int { refs.count }
    public func pendingCodeCount() -> Int { codePairings.count }
}

// MARK: Messaging

extension WASim {
    var nowSeconds: Int { Int(Date().timeIntervalSince1970) }

    /// Every device of a user: the phone (device 0) when it is a simulated phone, then its linked devices.
    func allDevices(of user: String) -> [JID] {
        (phones[user] != nil ? [JID(user: user, server: JID.userServer)] : []) + linkedDevices(of: user)
    }

    /// usync: each asked user's devices and LID (asked by phone number or by LID); unknown users are left out.
    func usyncAnswer(_ query: Node) throws -> Node {
        let users = try ServerUsync.parseQuery(query)
        return ServerUsync.answer(to: query, users: users.compactMap { asked in
            let user = phoneNumberForm(asked)
            let devices = allDevices(of: user.user)
            guard !devices.isEmpty else { return nil }
            // A LID-addressed question gets LID-addressed devices.
            return ServerUsync.UserDevices(
                user: asked.nonAD, devices: asked.server == JID.lidServer ? devices.map(lidForm) : devices,
                lid: phones[user.user]?.lid)
        })
    }

    /// A LID-addressed JID as its phone-number twin (whatsmeow addresses users by LID once usync
    /// told it the LID); other JIDs as they are.
    func phoneNumberForm(_ jid: JID) -> JID {
        guard jid.server == JID.lidServer, let phone = phones.values.first(where: { $0.lidUser == jid.user }) else { return jid }
        return JID(user: phone.number, device: jid.device, server: JID.userServer)
    }

    func lidForm(_ jid: JID) -> JID {
        guard jid.server == JID.userServer, let phone = phones[jid.user] else { return jid }
        return JID(user: phone.lidUser, device: jid.device, server: JID.lidServer)
    }

    /// A prekey bundle for one device; each one-time prekey is handed out once (lowest id first).
    func bundle(for asked: JID) async -> PreKeyBundle? {
        let jid = phoneNumberForm(asked)
        if jid.device == 0, let agent = agents[jid.user] { return await agent.bundle() }
        guard var device = devices[jid],
              let signedKey = try? Curve25519PublicKey(rawRepresentation: device.signedPreKey.key) else { return nil }
        var preKey: (UInt32, Curve25519PublicKey)?
        if let id = device.preKeys.keys.min(), let raw = device.preKeys.removeValue(forKey: id),
           let key = try? Curve25519PublicKey(rawRepresentation: raw) {
            preKey = (id, key)
        }
        devices[jid] = device
        if preKey != nil, device.preKeys.count == PreKeyNodes.minimumServerCount - 1, let connection = live[jid] {
            // Running low: tell the device, as the real server does (`<notification type=encrypt><count/>`).
            await connection.deliverNotification(Node("notification", [
                Attribute("from", .jid(.serverJID)), Attribute("type", "encrypt"), Attribute("id", .string(MessageID.random())),
                Attribute("t", .string(String(nowSeconds))),
            ], content: .nodes([Node("count", [Attribute("value", .string(String(device.preKeys.count)))])])))
        }
        return PreKeyBundle(
            registrationID: device.registrationID, deviceID: UInt32(jid.device), preKeyID: preKey?.0, preKey: preKey?.1,
            signedPreKeyID: device.signedPreKey.id, signedPreKey: signedKey,
            signedPreKeySignature: device.signedPreKey.signature, identityKey: device.identityKey)
    }

    /// Someone fetches a prekey bundle of `jid` (as a peer about to message it would): takes one
    /// one-time prekey. For tests that drain a device's prekeys.
    public func fetchBundle(for jid: JID) async -> PreKeyBundle? { await bundle(for: jid) }

    func bundleAnswer(_ query: Node) async throws(ServerPreKeys.Refusal) -> Node {
        let asked = try ServerPreKeys.parseBundleQuery(query)
        var bundles: [(JID, PreKeyBundle?)] = []
        for jid in asked { bundles.append((jid, await bundle(for: jid))) }
        return ServerPreKeys.bundleAnswer(to: query, bundles: bundles)
    }

    /// A `<message>` from `sender`: the sender's `<ack>` (with the server's participant hash)
    /// goes out first, on `connection`, then the stanza is fanned out per device
    /// (`ServerMessageRouting`). Returns the ack.
    @discardableResult
    func routeMessage(_ sent: Node, from sender: JID, connection: SimConnection? = nil) async -> Node {
        let now = nowSeconds
        if sent.string("category") == "peer" {
            // Peer messages: only to the sender's own phone (`Phone/WASim+Undecryptable.swift`).
            return await routePeerMessage(sent, from: sender, connection: connection)
        }
        if let to = sent.jid("to"), to.server == JID.groupServer {
            // Groups: the server-side rules and fan-out of `Server/GroupRouting.swift`.
            let routed = routeGroupMessage(sent, from: sender, timestamp: now)
            logger.debug("group message routed", metadata: [
                "to": "\(to)", "delivered_to": "\(routed.deliveries.count)", "error": "\(routed.ack.string("error") ?? "")",
            ])
            await connection?.sendMessageAck(routed.ack)
            for delivery in routed.deliveries { await deliver(delivery.node, to: delivery.device) }
            return routed.ack
        }
        var deliveries: [ServerMessageRouting.Delivery] = []
        let ack: Node
        if let to = sent.jid("to"), to.server == JID.userServer || to.server == JID.lidServer {
            let direct = routeDirect(sent, to: to, from: sender, timestamp: now)
            ack = direct.ack
            deliveries = direct.deliveries
        } else {
            ack = ServerMessageRouting.ack(for: sent, timestamp: now, error: 400)
        }
        logger.debug("message routed", metadata: [
            "to": "\(sent["to"].map { "\($0)" } ?? "?")",
            "participants": "\((sent.child("participants")?.children("to") ?? []).compactMap { $0.jid("jid")?.description })",
            "delivered_to": "\(deliveries.map(\.device.description))", "error": "\(ack.string("error") ?? "")",
        ])
        await connection?.sendMessageAck(ack)
        for delivery in deliveries { await deliver(delivery.node, to: delivery.device) }
        return ack
    }

    /// A receipt from `device`: to every device of the original sender's user (or the one
    /// device named), except the one that sent the receipt. Group receipts are not routed yet.
    func routeReceipt(_ receipt: Node, from device: JID) async {
        if let to = receipt.jid("to"), to.server == JID.groupServer, groups[to.user] != nil {
            // Groups: in the group's addressing form (`Server/GroupRouting.swift`).
            for (jid, node) in routeGroupReceipt(receipt, from: device, timestamp: nowSeconds) { await deliver(node, to: jid) }
            return
        }
        guard let original = ServerMessageRouting.originalSender(of: receipt), original.server != JID.groupServer else { return }
        let target = phoneNumberForm(original)
        // A receipt for a LID-addressed message comes back from the receipting device's LID.
        let from = original.server == JID.lidServer ? lidForm(device) : device
        guard let forwarded = try? ServerMessageRouting.forward(receipt: receipt, from: from, timestamp: nowSeconds) else { return }
        let targets = target.device != 0 ? [target] : allDevices(of: target.user)
        for jid in targets where jid != device { await deliver(forwarded, to: jid) }
    }

    /// Delivers a stanza to one device: a phone's agent handles it at once; a linked device gets
    /// it on its live connection and keeps it in its outbox until it acks, or on its next login.
    func deliver(_ node: Node, to jid: JID) async {
        if jid.device == 0, let agent = agents[jid.user] {
            if node.tag == "message", let from = node.jid("from"), from.server == JID.lidServer, let pn = node.jid("sender_pn") {
                // The phone learns the sender's LID and moves its sessions there, as whatsmeow does.
                await agent.migrateSessions(fromPN: pn, toLID: from)
            }
            if node.tag == "message" {
                if let receipt = await agent.receive(node) { await routeReceipt(receipt, from: jid) }
                for request in await agent.takeKeyRequests() { await answerKeyRequest(request, phone: jid.user) }
            } else if node.tag == "receipt", node.string("type") == "retry" {
                // The phone answers a retry receipt: resend (with a fresh bundle from the second retry).
                guard let retry = try? RetryReceipt(parsing: node) else { return }
                noteRetry(retry.messageID, phone: jid.user)
                let fresh = retry.wantsFreshBundle ? await bundle(for: retry.device) : nil
                if let resend = await agent.resend(for: retry, bundle: fresh) { await routeMessage(resend, from: jid) }
            } else if node.tag == "receipt" {
                await agent.record(receipt: node)
            }
            return
        }
        guard devices[jid] != nil else { return }
        if let device = headless[jid] {
            if node.tag == "message" { await device.receive(node) }
            return
        }
        // Changed in place: a copy per stanza made a burst quadratic.
        outbox[jid, default: []].append(node)
        if let n = outbox[jid]?.count, n > configuration.limits.maxOutbox {
            outbox[jid]?.removeFirst(n - configuration.limits.maxOutbox)
            droppedOfflineStanzas += 1
            // The first, then every 1000th: a burst past the bound must not flood the log.
            if droppedOfflineStanzas % 1_000 == 1 {
                logger.warning("outbox full, oldest stanza dropped",
                               metadata: ["device": "\(jid)", "dropped_so_far": "\(droppedOfflineStanzas)"])
            }
        }
        await live[jid]?.deliver(node)
    }

    /// A device's receipt for messages (delivery, read, sender, …; not retry) counts as their ack,
    /// as the real server takes it: whatsmeow answers messages with receipts, not `<ack>`s.
    func receiptAcks(_ receipt: Node, by jid: JID) {
        receivedReceipts[jid, default: []].append(receipt)
        if receivedReceipts[jid]!.count > 256 { receivedReceipts[jid]!.removeFirst() }
        guard receipt.string("type") != "retry", let first = receipt.string("id") else { return }
        let ids = Set([first] + (receipt.child("list")?.children("item").compactMap { $0.string("id") } ?? []))
        outbox[jid]?.removeAll { $0.tag == "message" && ids.contains($0.string("id") ?? "") }
    }

    /// A device acked a message or receipt: it leaves the outbox.
    func acked(_ ack: Node, by jid: JID) {
        receivedAcks[jid, default: []].append(ack)
        if receivedAcks[jid]!.count > 256 { receivedAcks[jid]!.removeFirst() }
        guard let id = ack.string("id"), let kind = ack.string("class"),
              let index = outbox[jid]?.firstIndex(where: { $0.tag == kind && $0.string("id") == id }) else { return }
        outbox[jid]?.remove(at: index)
    }

    /// Stanzas waiting for a device (not yet acked).
    public func outboxCount(_ jid: JID) -> Int { outbox[jid]?.count ?? 0 }

    /// One-time prekeys a linked device uploaded that no one fetched yet.
    public func uploadedPreKeyCount(_ jid: JID) -> Int { devices[jid]?.uploadedPreKeys ?? 0 }

    // MARK: Phones that message

    /// The phone `number` sends a text to `to` (a user): encrypted for every device of that user
    /// and, as a DeviceSentMessage, for the phone's own linked devices. Returns the message id.
    @discardableResult
    public func sendText(from number: String, to: JID, text: String, id: String? = nil) async throws -> String {
        var message = WAE2E_Message()
        message.conversation = text
        return try await sendMessage(from: number, to: to, message: message, id: id)
    }

    /// The phone `number` sends a media file (image, video, audio, document) to `to`: encrypted
    /// with WhatsApp's media crypto under a fresh media key, put on the media host as an upload
    /// would, and announced in a message carrying the key, both hashes and the direct path.
    @discardableResult
    public func sendMedia(
        from number: String, to: JID, data: Data, kind: MessageContent.MediaInfo.Kind, mimetype: String,
        caption: String? = nil, fileName: String? = nil, id: String? = nil
    ) async throws -> String {
        let encrypted: EncryptedMedia
        do { encrypted = try EncryptedMedia(encrypting: data, kind: kind) } catch {
            throw SimError("sim.send_failed", "media does not encrypt")
        }
        let directPath = await media.store(encrypted.blob, kind: kind.mmsType)
        let url = "http://\(configuration.host):\(mediaPort ?? 0)\(directPath)"
        let now = Int64(nowSeconds)
        var message = WAE2E_Message()
        switch kind {
        case .image, .sticker:
            var m = WAE2E_ImageMessage()
            m.setMedia(encrypted, url: url, directPath: directPath, mimetype: mimetype, timestamp: now)
            if let caption { m.caption = caption }
            message.imageMessage = m
        case .video:
            var m = WAE2E_VideoMessage()
            m.setMedia(encrypted, url: url, directPath: directPath, mimetype: mimetype, timestamp: now)
            if let caption { m.caption = caption }
            message.videoMessage = m
        case .audio:
            var m = WAE2E_AudioMessage()
            m.setMedia(encrypted, url: url, directPath: directPath, mimetype: mimetype, timestamp: now)
            message.audioMessage = m
        case .document:
            var m = WAE2E_DocumentMessage()
            m.setMedia(encrypted, url: url, directPath: directPath, mimetype: mimetype, timestamp: now)
            m.fileName = fileName ?? "file"
            if let caption { m.caption = caption }
            message.documentMessage = m
        }
        return try await sendMessage(from: number, to: to, message: message, id: id)
    }

    /// The phone `number` sends any E2E message to a user (every device of theirs and, as a
    /// DeviceSentMessage, the phone's linked devices). Returns the message id.
    @discardableResult
    public func sendMessage(from number: String, to: JID, message: WAE2E_Message, id: String? = nil) async throws -> String {
        guard let phone = phones[number], let agent = agents[number] else { throw SimError.unknownPhone(number) }
        let id = id ?? MessageID.random(ownJID: phone.jid)
        let peer = phoneNumberForm(to.nonAD)
        // A migrated phone addresses a user with a LID by the LID (its own devices too).
        let viaLID = phone.lidMigrated && phones[peer.user] != nil
        let form: (JID) -> JID = { viaLID ? self.lidForm($0) : $0 }
        let recipient = allDevices(of: peer.user).map(form)
        guard !recipient.isEmpty else { throw SimError("sim.unknown_user", "\(to.user) has no devices") }
        let own = allDevices(of: number).map(form)
        if viaLID {
            await agent.migrateSessions(fromPN: peer, toLID: lidForm(peer))
            await agent.migrateSessions(fromPN: phone.jid, toLID: phone.lid)
        }
        var bundles: [JID: PreKeyBundle] = [:]
        for device in try await agent.needingBundles(recipient + own, asLID: viaLID) {
            if let bundle = await bundle(for: device) { bundles[device] = bundle }
        }
        let node: Node
        do {
            node = try await agent.directMessage(
                id: id, to: form(peer), message: message, recipient: recipient, own: own, bundles: bundles, asLID: viaLID)
        } catch {
            throw SimError("sim.send_failed", "phone could not encrypt: \((error as? WAClientError)?.code.rawValue ?? "?")")
        }
        await agent.markSent(id)
        var withToken = node
        if let token = phoneTokenNode(from: number, to: peer.user) { withToken.content = .nodes(node.children + [token]) }
        let ack = await routeMessage(withToken, from: phone.jid)
        if let error = ack.string("error") { throw SimError("sim.send_failed", "routing refused: \(error)") }
        return id
    }

    /// The phone `number` fetches and decrypts the media of a message it received, with every
    /// check a client makes (`MediaCrypto.decrypt`: fileEncSha256, MAC, fileSha256). Throws the
    /// client's typed `WAClientError` on a mismatch, `sim.unknown_media` if there is nothing to fetch.
    public func downloadMedia(phone number: String, id: String) async throws -> Data {
        guard let info = await agents[number]?.media[id] else { throw SimError("sim.unknown_media", "no media message \(id)") }
        guard let blob = await media.blob(at: info.directPath) else {
            throw SimError("sim.unknown_media", "the media host has nothing at the message's direct path")
        }
        return try MediaCrypto.decrypt(blob, info: info)
    }

    /// The media host alters one byte of a stored blob (a tampering host or network). False if
    /// nothing is stored at `directPath`.
    @discardableResult
    public func corruptMedia(directPath: String, at offset: Int = 0) async -> Bool {
        await media.corrupt(directPath, at: offset)
    }

    /// Downloads the media host refused with 503 (`Configuration.failingMediaDownloads`).
    public var mediaDownloadsRefused: Int { get async { await media.downloadsRefused } }

    /// Blobs uploaded to the media host (by clients and by phones).
    public var mediaUploads: Int { get async { await media.uploads } }

    /// The phone is reinstalled: a new Signal identity and store (sessions, prekeys and what it
    /// received are gone); its account key and linked devices stay.
    public func reinstallPhone(_ number: String) throws {
        guard let phone = phones[number] else { throw SimError.unknownPhone(number) }
        agents[number] = try SimPhoneAgent(phone: phone, identity: .generate())
    }

    /// The phone `number` loses its Signal session with `device` (a phone restored without its
    /// keys): the device's next message fails to decrypt and the retry-receipt path must recover.
    public func dropSession(phone number: String, with device: JID) async throws {
        guard let agent = agents[number] else { throw SimError.unknownPhone(number) }
        // Whichever address the phone keeps it under (LID once the device spoke LID-addressed).
        await agent.store.deleteSession(for: SignalAddress(jid: phoneNumberForm(device)))
        await agent.store.deleteSession(for: SignalAddress(jid: lidForm(device)))
    }

    /// The phone `number` reads messages of a chat: a read receipt to their sender.
    public func markRead(phone number: String, ids: [String], chat: JID) async throws {
        guard let phone = phones[number] else { throw SimError.unknownPhone(number) }
        let receipt: Node
        do { receipt = try ReceiptNodes.read(ids: ids, chat: chat) } catch {
            throw SimError("sim.bad_request", "read receipt for \(ids.count) ids")
        }
        await routeReceipt(receipt, from: phone.jid)
    }

    /// How many second copies of an already-received message (same chat, sender and id) the
    /// phone got and did not show again.
    public func duplicatesDropped(phone number: String) async -> Int { await agents[number]?.duplicatesDropped ?? 0 }

    /// What the phone `number` received and decrypted, oldest first (the newest 5000).
    /// Chats and senders are given by phone number where the simulator knows it (the phone's
    /// app shows the contact, whichever address the message came by).
    public func receivedMessages(phone number: String) async -> [SimReceivedMessage] {
        (await agents[number]?.received ?? []).map { $0.renamed(chat: phoneNumberForm($0.chat), sender: phoneNumberForm($0.sender)) }
    }

    /// What the phone received, with chat and sender as the stanza addressed them (a LID stays a
    /// LID): for tests that check which address a client sent as.
    public func receivedMessagesAsAddressed(phone number: String) async -> [SimReceivedMessage] {
        await agents[number]?.received ?? []
    }

    /// The `<enc type>`s of a message the phone received (`pkmsg` opens a session, `msg` rides on one).
    public func encryptionTypes(phone number: String, id: String) async -> [String] { await agents[number]?.encTypes[id] ?? [] }

    /// How many resends the phone made for retry receipts.
    public func resendsMade(phone number: String) async -> Int { await agents[number]?.resends ?? 0 }

    /// How many retry receipts the phone sent (messages it could not decrypt).
    public func retryReceiptsSent(phone number: String) async -> Int { await agents[number]?.retryReceiptsSent ?? 0 }

    /// Where a message the phone sent stands (`sent`, `delivered`, `read`, `played`).
    public func messageStatus(phone number: String, id: String) async -> MessageStatus? {
        await agents[number]?.status(of: id)
    }
}

extension SimConnection {
    func setAnswerDelay(_ delay: Duration?) { answerDelay = delay }
}

/// Answers any plain HTTP request (not a WebSocket upgrade to /ws/chat) with 404.
private final class NotFoundHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .end = unwrapInboundIn(data) else { return }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Length", value: "0")
        headers.add(name: "Connection", value: "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .notFound, headers: headers))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        context.close(promise: nil)
    }
}
