import Foundation
import Logging
import WABinary
import WAProto
import WASignal

/// A sent message as the server acknowledged it.
public struct SentMessage: Sendable, Hashable {
    public var id: String
    public var chat: JID
    /// The server's timestamp from its `<ack t>`.
    public var timestamp: Date?
    /// The participant hash the server answered (nil when it sent none).
    public var phash: String?
    /// How many devices the message was encrypted for (theirs and our other ones).
    public var deviceCount: Int
    /// Devices the message could not be encrypted for (no prekey bundle, untrusted identity…):
    /// they do not get it, while the others do.
    public var failedDevices: [DeviceSendFailure] = []
}

/// One recipient device a send skipped, with a stable code.
public struct DeviceSendFailure: Sendable, Hashable {
    public var device: JID
    /// `NO_PREKEY_BUNDLE`, `UNTRUSTED_IDENTITY`, `ENCRYPT_FAILED`, `STORE_ERROR`.
    public var code: String

    public init(device: JID, code: String) {
        self.device = device
        self.code = code
    }

    /// The failures of a fan-out, by device, sorted for a stable order.
    static func list(_ skipped: [JID: WAClientError]) -> [DeviceSendFailure] {
        skipped.map { DeviceSendFailure(device: $0.key, code: code(of: $0.value)) }.sorted { $0.device.description < $1.device.description }
    }

    /// `WAClientError.signal` keeps Signal's code in the text; a missing bundle is the sender's own refusal.
    static func code(of error: WAClientError) -> String {
        let text = error.message
        if text.hasSuffix(SignalError.Code.untrustedIdentity.rawValue) { return "UNTRUSTED_IDENTITY" }
        if text.contains("no session and no prekey bundle") { return "NO_PREKEY_BUNDLE" }
        if text.hasSuffix(SignalError.Code.corruptRecord.rawValue) || error.code == .store { return "STORE_ERROR" }
        return "ENCRYPT_FAILED"
    }
}

/// The message a reply quotes.
public struct QuotedMessage: Sendable {
    public var id: String
    /// Who wrote it (a user JID).
    public var sender: JID
    /// Its content, shown in the reply bubble (optional).
    public var message: WAE2E_Message?

    public init(id: String, sender: JID, message: WAE2E_Message? = nil) {
        self.id = id
        self.sender = sender
        self.message = message
    }
}

/// A message on the link whose server ack may still be coming (`WAClient.stageMessage`).
public struct StagedMessage: Sendable {
    public let id: String
    public let chat: JID
    let completion: @Sendable () async throws -> SentMessage

    /// Waits for the server's ack; throws its refusal, `client.ack_timeout`, or
    /// `client.connection_closed` when the link dropped first.
    public func sent() async throws -> SentMessage { try await completion() }
}

/// The `WAE2E_Message` of each kind of content the client sends.
public enum OutgoingContent {
    /// A text; with a quoted message or mentions it is an `extendedTextMessage`.
    public static func text(_ text: String, replyTo: QuotedMessage? = nil, mentions: [JID] = []) -> WAE2E_Message {
        var message = WAE2E_Message()
        if replyTo == nil && mentions.isEmpty {
            message.conversation = text
            return message
        }
        message.extendedTextMessage.text = text
        var context = WAE2E_ContextInfo()
        if let replyTo {
            context.stanzaID = replyTo.id
            context.participant = replyTo.sender.nonAD.description
            if let quoted = replyTo.message { context.quotedMessage = quoted }
        }
        context.mentionedJid = mentions.map { $0.nonAD.description }
        message.extendedTextMessage.contextInfo = context
        return message
    }

    /// A reaction to a message (`emoji` empty removes it).
    public static func reaction(chat: JID, messageID: String, sender: JID, fromMe: Bool, emoji: String) -> WAE2E_Message {
        var message = WAE2E_Message()
        message.reactionMessage.key.remoteJid = chat.nonAD.description
        message.reactionMessage.key.id = messageID
        message.reactionMessage.key.fromMe = fromMe
        if chat.server == JID.groupServer { message.reactionMessage.key.participant = sender.nonAD.description }
        message.reactionMessage.text = emoji
        message.reactionMessage.senderTimestampMs = Int64(Date().timeIntervalSince1970 * 1000)
        return message
    }

    /// Deletes one of our own messages for everyone.
    public static func revoke(chat: JID, messageID: String) -> WAE2E_Message {
        var message = WAE2E_Message()
        message.protocolMessage.type = .revoke
        message.protocolMessage.key.remoteJid = chat.nonAD.description
        message.protocolMessage.key.id = messageID
        message.protocolMessage.key.fromMe = true
        return message
    }

    /// Replaces the text of one of our own messages.
    public static func edit(chat: JID, messageID: String, newText: String) -> WAE2E_Message {
        var message = WAE2E_Message()
        message.protocolMessage.type = .messageEdit
        message.protocolMessage.key.remoteJid = chat.nonAD.description
        message.protocolMessage.key.id = messageID
        message.protocolMessage.key.fromMe = true
        message.protocolMessage.editedMessage.conversation = newText
        message.protocolMessage.timestampMs = Int64(Date().timeIntervalSince1970 * 1000)
        return message
    }
}

/// Phase 2: messages, receipts and prekeys on a `WAClient`.
///
/// * `didLogin`: prekey count → upload when the server holds fewer than
///   `PreKeyNodes.minimumServerCount` (812 keys when it holds none, else 50);
///   again on `<notification type=encrypt><count/>`.
/// * send (`WAClient.sendText`, `sendMessage`): usync (device list cache,
///   users in batches of `usyncBatch`), bundles for devices without a session
///   (batches of `bundleBatch`), encrypt, send, wait for the server `<ack>`.
/// * `<message>` → `MessageReceiver` → `onMessage` (when given) → delivery
///   receipt (or retry receipt) → `<ack>` → `WAEvent.messageReceived` /
///   `.messageUndecryptable`. With `onMessage`, a message is acknowledged to
///   WhatsApp only after the handler returned: if it throws (or the process
///   dies first), neither receipt nor ack is sent and the server delivers the
///   stanza again. Its ciphertext no longer decrypts (the ratchet moved on),
///   so the plaintext was stored in the same store commit as the ratchet step
///   (`PendingPlaintextStore`), is served from there to the handler, and is
///   deleted once the handler returned (bounded: `unhandledMessages`,
///   `unhandledMaxAge`).
/// * `<receipt>` → `<ack>` → `WAEvent.messageStatus`; a retry receipt resends
///   from `RecentMessageCache`.
///
/// All state lives in one actor (`MessagingState`); nothing here logs keys or
/// message text.
public final class MessagingFeature: WAClientFeature {
    public struct Configuration: Sendable {
        /// How long a send waits for the server's `<ack>`.
        public var ackTimeout: Duration = .seconds(20)
        /// Most sends waiting for their ack at once.
        public var maxPendingSends = 256
        /// Users per usync query.
        public var usyncBatch = 50
        /// Devices per prekey bundle query.
        public var bundleBatch = 50
        /// Sent messages kept for retry receipts.
        public var recentMessages = 256
        /// Decrypted payloads not yet taken by `onMessage`, kept in the store for the
        /// server's redelivery: at most this many (oldest dropped first) ...
        public var unhandledMessages = 5_000
        /// ... and none older than this (WhatsApp keeps an undelivered stanza about 30 days).
        public var unhandledMaxAge: TimeInterval = 30 * 86_400
        /// Device lists kept (users) and for how long.
        public var deviceCacheCapacity = 1_000
        public var deviceCacheTTL: TimeInterval = 3_600
        /// Group metadata kept (groups) and for how long at most (`w:gp2` notifications and
        /// participant-hash mismatches drop an entry sooner).
        public var groupCacheCapacity = 1_000
        public var groupCacheTTL: TimeInterval = 86_400
        /// How long a DM with no privacy token (and no NCT salt to derive one) waits for the
        /// login's offline batch, which brings the phone's history sync and token notifications.
        public var privacyTokenWait: Duration = .seconds(10)
        /// History-sync messages handed to `onHistory`: none older than this (nil: no age bound) ...
        public var historyMaxAge: TimeInterval? = 7 * 86_400
        /// ... and at most this many per chunk, the newest kept.
        public var historyMaxMessages = 1_000
        /// After a failed decrypt and our first retry receipt, our phone is asked for the message
        /// this long later unless the sender's retry arrived first (whatsmeow `RequestFromPhoneDelay`,
        /// `AutomaticMessageRerequestFromPhone`); nil: never.
        public var phoneRequestDelay: Duration? = .seconds(5)
        public init() {}
    }

    public let stanzaTags: Set<String> = ["message", "receipt", "ack", "notification"]
    let state: MessagingState

    /// Called with each decrypted message before WhatsApp gets its receipt;
    /// the bridge writes its outbox here. Throwing withholds the receipt.
    public typealias MessageHandler = @Sendable (ReceivedMessage) async throws -> Void

    /// Called with the status a `<receipt>` carries (delivered, read, played) before
    /// WhatsApp gets its ack; throwing withholds the ack and the server sends the
    /// receipt again. The status is also published as `WAEvent.messageStatus`.
    public typealias StatusHandler = @Sendable (ReceiptEvent.StatusUpdate) async throws -> Void

    /// Called with each history-sync chunk the phone sent (read or failed), in order, off the
    /// read loop; the stanza was acknowledged before (the phone does not send a chunk twice).
    public typealias HistoryHandler = @Sendable (HistorySyncChunk) async -> Void

    /// Called with each message that could not be read, before its retry receipt and its ack:
    /// the bridge records `message.undecryptable` here, so no stanza is acked unreported.
    /// Throwing withholds the ack (the server delivers the stanza again).
    public typealias UndecryptableHandler = @Sendable (UndecryptableMessage) async throws -> Void

    public init(store: any SignalStoreProvider, configuration: Configuration = Configuration(),
                logger: Logger = Logger(label: "wabridge.waclient.messaging"), onMessage: MessageHandler? = nil,
                onStatus: StatusHandler? = nil, onHistory: HistoryHandler? = nil, onUndecryptable: UndecryptableHandler? = nil) {
        state = MessagingState(provider: store, configuration: configuration, logger: logger, onMessage: onMessage,
                               onStatus: onStatus, onHistory: onHistory, onUndecryptable: onUndecryptable)
    }

    public func handle(_ node: Node, client: WAClient) async {
        switch node.tag {
        case "message": await state.receiveMessage(node, client: client)
        case "receipt": await state.receiveReceipt(node, client: client)
        case "ack": await state.receiveAck(node)
        case "notification":
            await client.ack(node)
            if node.string("type") == "devices" {
                await state.applyDeviceNotification(node)
            } else if node.string("type") == "w:gp2" {
                await state.applyGroupNotification(node)
            } else if node.string("type") == "server_sync" {
                await client.appState?.serverSync(node, client: client)
            } else if node.string("type") == "privacy_token" {
                await state.receivePrivacyTokens(node)
            } else if let own = OwnDevicesNotification(parsing: node) {
                await state.applyOwnDevices(own, client: client)
            } else if let from = Self.announcedIdentityChange(node) {
                await state.identityChangeAnnounced(by: from, client: client)
            } else if PreKeyNodes.lowPreKeyCount(in: node) != nil {
                Task { await self.state.refillPreKeys(client: client) }
            }
        default: break
        }
    }

    /// `<notification type=encrypt from=user><identity/></notification>`: the user's identity changed
    /// (whatsmeow notification.go handleEncryptNotification); nil for any other notification.
    static func announcedIdentityChange(_ node: Node) -> JID? {
        guard node.tag == "notification", node.string("type") == "encrypt", node.child("identity") != nil,
              let from = node.jid("from"), from != JID.serverJID,
              from.server == JID.userServer || from.server == JID.lidServer, !from.user.isEmpty else { return nil }
        return from.nonAD
    }

    /// Sends waiting for their server ack fail now, retryable, instead of at `ackTimeout`:
    /// an ack never crosses to a new connection.
    public func linkClosed(client: WAClient) async {
        await state.failPendingAcks()
        await state.offlineSyncReset()
        await state.cancelPhoneRequests()
    }

    public func offlineSyncCompleted(client: WAClient) async {
        await state.offlineSyncDone()
    }

    public func didLogin(_ info: LoginInfo, client: WAClient) async {
        await state.resetPrivacyCaches()
        await state.learnOwnLID(info, client: client)
        await state.pruneKeptPlaintexts(client: client)
        await state.refillPreKeys(client: client)
        await state.pruneExpiredPrivacyTokens()
    }

    /// Waits until the history-sync chunks received so far are handed over (tests).
    public func historySettled() async { await state.historySettled() }

    /// History-sync chunks handed over so far (read or failed).
    public var historyChunksHandled: Int { get async { await state.historyChunksHandled } }

    /// Second copies of a recovered message dropped: the sender's retry after our phone's answer,
    /// or the phone's answer after the retry (tests, diagnostics).
    public var recoveryDuplicatesDropped: Int { get async { await state.recoveryDuplicatesDropped } }

    /// Failed messages waiting out the delay before our phone is asked (tests, diagnostics).
    public var pendingPhoneRequests: Int { get async { await state.phoneRequestTimers.count } }

    /// How many of our privacy tokens this feature issued to peers (tests, diagnostics).
    public var privacyTokensIssued: Int { get async { await state.privacyTokensIssued } }

    /// The cached device list of `user`, nil when not cached (for tests and diagnostics).
    public func cachedDevices(of user: JID) async -> [JID]? { await state.cachedDevices(of: user) }

    /// The cached metadata of `group`, nil when not cached (for tests and diagnostics).
    public func cachedGroup(_ group: JID) async -> GroupMetadata? { await state.cachedGroup(group) }

    /// How many one-time prekeys this feature uploaded, per upload (for tests and metrics).
    public var preKeyUploads: [Int] { get async { await state.uploads } }
}

extension WAClient {
    var messaging: MessagingFeature? { features.lazy.compactMap { $0 as? MessagingFeature }.first }

    private func requireMessaging() throws -> MessagingFeature {
        guard let messaging else { throw WAClientError(.messagingDisabled, "client has no MessagingFeature") }
        return messaging
    }

    /// Sends a text to a user (1:1) or a group (`…@g.us`), waits for the server's ack.
    public func sendText(
        to: JID, text: String, id: String? = nil, replyTo: QuotedMessage? = nil, mentions: [JID] = []
    ) async throws -> SentMessage {
        try await sendMessage(to: to, OutgoingContent.text(text, replyTo: replyTo, mentions: mentions), id: id)
    }

    /// Reacts to a message (`emoji` empty removes the reaction).
    public func sendReaction(
        to chat: JID, messageID: String, sender: JID, fromMe: Bool, emoji: String, id: String? = nil
    ) async throws -> SentMessage {
        try await sendMessage(
            to: chat, OutgoingContent.reaction(chat: chat, messageID: messageID, sender: sender, fromMe: fromMe, emoji: emoji),
            id: id)
    }

    /// Revokes (deletes for everyone) one of our own messages.
    public func revoke(chat: JID, messageID: String, id: String? = nil) async throws -> SentMessage {
        try await sendMessage(to: chat, OutgoingContent.revoke(chat: chat, messageID: messageID), id: id)
    }

    /// Edits one of our own texts.
    public func editText(chat: JID, messageID: String, newText: String, id: String? = nil) async throws -> SentMessage {
        try await sendMessage(to: chat, OutgoingContent.edit(chat: chat, messageID: messageID, newText: newText), id: id)
    }

    /// Sends any E2E message to a user or a group (metadata, usync, bundles, encrypt, send, ack).
    public func sendMessage(to: JID, _ message: WAE2E_Message, id: String? = nil) async throws -> SentMessage {
        try await stageMessage(to: to, message, id: id).sent()
    }

    /// Encrypts and writes the message to the link, and returns without waiting for the
    /// server's ack: `StagedMessage.sent()` waits for it. Stanzas staged one after another
    /// by one task leave in that order, so a caller can keep several sends in flight and
    /// still keep their order (the bridge's command pipeline). Every staged message must be
    /// awaited with `sent()`: its ack slot is freed there. A group send is not pipelined: it
    /// returns once acknowledged.
    public func stageMessage(to: JID, _ message: WAE2E_Message, id: String? = nil) async throws -> StagedMessage {
        try await requireMessaging().state.stage(message, to: to, id: id, client: self)
    }

    /// Sends a read receipt for messages of one chat (`sender`: the author, for groups).
    public func markRead(ids: [String], chat: JID, sender: JID? = nil, played: Bool = false) async throws {
        try send(ReceiptNodes.read(ids: ids, chat: chat, sender: sender, played: played))
    }
}

/// The one owner of the messaging state of a client.
actor MessagingState {
    let provider: any SignalStoreProvider
    let configuration: MessagingFeature.Configuration
    let logger: Logger
    private var deviceCache: DeviceListCache
    private var groupCache: GroupMetadataCache
    /// Metadata queries in flight, so concurrent sends to one group ask once.
    private var groupFetches: [JID: Task<GroupMetadata, any Error>] = [:]
    /// Counts group notifications: an answer fetched while one came in may be stale, so it is not cached.
    private var groupEpoch: UInt64 = 0
    private var recent: RecentMessageCache
    private var receiver: MessageReceiver?
    private var receiverDevice: JID?
    private var refilling = false
    /// Per group (newest `maxTrackedGroups`): the devices that got our current sender key.
    private var senderKeyHolders: [JID: Set<JID>] = [:]
    private var holderOrder: [JID] = []
    static let maxTrackedGroups = 1_000
    private(set) var uploads: [Int] = []
    /// Phone numbers whose Signal state was moved to their LID in this process (bounded).
    private var migratedPNUsers: Set<String> = []
    static let maxMigratedUsers = 100_000

    private enum PendingAck {
        /// Written; the number is this write's, so a timer of an earlier write of the
        /// same id (a retry reuses the id) does not expire it.
        case registered(UInt64)
        case waiting(CheckedContinuation<ServerAck, any Error>, UInt64)
        case arrived(ServerAck)
        /// The link closed while the stanza was being written: no ack will come.
        case linkClosed
        /// `ackTimeout` passed before its sender started waiting.
        case timedOut
    }
    private var pendingAcks: [String: PendingAck] = [:]
    private var counter: UInt64 = 0
    /// This connection's offline batch is through (`<ib><offline/>`), and the DMs waiting for it.
    var offlineSynced = false
    var offlineWaiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
    private var offlineTickets: UInt64 = 0
    /// When we last issued our privacy token to each peer (storage user), bounded.
    var issuedTokens: [JID: Date] = [:]
    static let maxIssuedTokens = 100_000
    var privacyTokensIssued = 0
    var lastTokenPrune: Date?
    /// What the store holds of tokens (by storage user; nil inside: none) and of the salt.
    var tokenCache: [JID: PrivacyToken?] = [:]
    var saltCache: Data??
    let onMessage: MessagingFeature.MessageHandler?
    let onStatus: MessagingFeature.StatusHandler?
    let onHistory: MessagingFeature.HistoryHandler?
    /// The last history chunk queued (`MessagingState+HistorySync`): the next one waits for it.
    var historyTail: Task<Void, Never>?
    var historyChunksHandled = 0
    let onUndecryptable: MessagingFeature.UndecryptableHandler?
    /// Messages we asked our phone for (placeholder resend): message id → request id, bounded.
    var placeholderRequests: [String: String] = [:]
    var placeholderOrder: [String] = []
    /// Failed messages whose phone request waits out `phoneRequestDelay` (message id → timer), bounded.
    var phoneRequestTimers: [String: Task<Void, Never>] = [:]
    /// Ids delivered while our phone was (to be) asked for them: the other copy is dropped. Bounded.
    var recoveredIDs: Set<String> = []
    var recoveredOrder: [String] = []
    var recoveryDuplicatesDropped = 0

    init(provider: any SignalStoreProvider, configuration: MessagingFeature.Configuration, logger: Logger,
         onMessage: MessagingFeature.MessageHandler? = nil, onStatus: MessagingFeature.StatusHandler? = nil,
         onHistory: MessagingFeature.HistoryHandler? = nil, onUndecryptable: MessagingFeature.UndecryptableHandler? = nil) {
        self.onHistory = onHistory
        self.provider = provider
        self.configuration = configuration
        self.logger = logger
        self.onMessage = onMessage
        self.onStatus = onStatus
        self.onUndecryptable = onUndecryptable
        deviceCache = DeviceListCache(capacity: configuration.deviceCacheCapacity, ttl: configuration.deviceCacheTTL)
        groupCache = GroupMetadataCache(capacity: configuration.groupCacheCapacity, ttl: configuration.groupCacheTTL)
        recent = RecentMessageCache(capacity: configuration.recentMessages)
    }

    /// True the first time `user` is noted (its sessions are to be moved now).
    func notePNMigrated(_ user: String) -> Bool {
        if migratedPNUsers.count >= Self.maxMigratedUsers { migratedPNUsers.removeAll() }
        return migratedPNUsers.insert(user).inserted
    }

    func forgetPNMigrated(_ user: String) { migratedPNUsers.remove(user) }

    /// Our own number and LID, as the login told them (whatsmeow stores the pair at connect).
    func learnOwnLID(_ info: LoginInfo, client: WAClient) async {
        guard let lid = info.lid else { return }
        let mapping: LIDMapping
        do { mapping = try LIDMapping(lid, info.jid) } catch {
            logger.warning("own LID not recorded: the login's pair does not map", metadata: ["error": "\(type(of: error))"])
            return
        }
        let store: (any SignalProtocolStore)?
        do { store = try await context(client).store } catch {
            // The mapping is still kept; our sessions move to the LID at the next send instead.
            logger.warning("own LID recorded without moving sessions: signal store unavailable", metadata: [
                "error": "\((error as? WAClientError)?.code.rawValue ?? "\(type(of: error))")",
            ])
            store = nil
        }
        await learn([mapping], store: store)
    }

    func nextOfflineTicket() -> UInt64 {
        offlineTickets += 1
        return offlineTickets
    }

    private func nextID(_ prefix: String) -> String {
        counter += 1
        return "\(prefix).\(counter).\(UInt32.random(in: 0...UInt32.max))"
    }

    struct Context {
        var record: DeviceRecord
        var own: JID
        var store: any SignalProtocolStore
        var deviceIdentity: Data
    }

    func context(_ client: WAClient) async throws -> Context {
        guard let record = await client.device, let own = record.jid, let account = record.account else {
            throw WAClientError(.notConnected, "device is not paired")
        }
        let identity: Data
        do { identity = try account.serializedData() } catch {
            throw WAClientError(.payloadInvalid, "account identity does not serialize")
        }
        let store: any SignalProtocolStore
        do { store = try await provider.signalStore(for: record) } catch {
            throw WAClientError(.store, "signal store: \(type(of: error))")
        }
        return Context(record: record, own: own, store: store, deviceIdentity: identity)
    }

    // MARK: Prekeys

    func refillPreKeys(client: WAClient) async {
        guard !refilling else { return }
        refilling = true
        defer { refilling = false }
        do {
            let ctx = try await context(client)
            let count = try PreKeyNodes.parseCount(try await client.sendIQ(PreKeyNodes.countIQ(id: nextID("pkc"))))
            guard count < PreKeyNodes.minimumServerCount else { return }
            let wanted = count == 0 ? PreKeyNodes.initialUploadCount : PreKeyNodes.refillUploadCount
            let ids = try await provider.allocatePreKeyIDs(wanted)
            let keys = ids.map { PreKeyRecord(id: $0, keyPair: .generate()) }
            for key in keys { try await ctx.store.storePreKey(key) }
            let iq = try PreKeyNodes.uploadIQ(
                id: nextID("pku"), registrationID: ctx.record.registrationID, identity: ctx.record.identityKey.publicKey,
                signedPreKey: ctx.record.signedPreKey.signalRecord, preKeys: keys)
            let answer = try await client.sendIQ(iq)
            try IQStanza.checkResult(answer, "prekey upload")
            uploads.append(keys.count)
            logger.info("prekeys uploaded", metadata: ["count": "\(keys.count)", "server_had": "\(count)"])
        } catch {
            logger.warning("prekey refill failed", metadata: ["error": "\((error as? WAClientError)?.code.rawValue ?? "\(type(of: error))")"])
        }
    }

    // MARK: Send

    /// Encrypts and writes a message; the returned value waits for the server's ack.
    func stage(_ message: WAE2E_Message, to: JID, id: String?, client: WAClient) async throws -> StagedMessage {
        let ctx = try await context(client)
        let chat = to.nonAD
        let id = id ?? MessageID.random(ownJID: ctx.own)
        if chat.server == JID.groupServer {
            let sent = try await sendGroup(message, group: chat, id: id, ctx: ctx, client: client)
            return StagedMessage(id: id, chat: chat) { sent }
        }
        let route = try await directRoute(chat, ctx: ctx, client: client)
        if let pn = route.peerPN, let mapping = try? LIDMapping(route.to, pn) { await migrateSessions(mapping, store: ctx.store) }
        // Before encrypting: a DM waiting for the offline batch must not hold a ratchet step.
        let privacyToken = await privacyTokenNodeWaitingForOffline(for: route.to)
        let lists = try await devices(of: [route.to, route.own.nonAD], client: client)
        let recipient = lists[route.to]?.devices ?? []
        guard !recipient.isEmpty else { throw WAClientError(.invalidRecipient, "\(chat) has no devices") }
        let ownDevices = lists[route.own.nonAD]?.devices ?? [route.own]
        let sender = MessageSender(store: ctx.store, ownDevice: route.own, deviceIdentity: ctx.deviceIdentity)
        let missing = try await sender.devicesNeedingBundles(recipient + ownDevices)
        let bundles = try await fetchBundles(missing, client: client)
        let out = try await sender.directMessage(
            id: id, to: route.to, message: message, recipientDevices: recipient, ownDevices: ownDevices, bundles: bundles)
        var node = out.node
        if let pn = route.peerPN { node["peer_recipient_pn"] = .jid(pn) }
        if let privacyToken { node.content = .nodes(node.children + [privacyToken]) }
        recent.insert(message, chat: route.to, id: id)
        for change in out.identityChanges { await client.emit(.identityChanged(change)) }
        let failed = DeviceSendFailure.list(out.skipped)
        if !failed.isEmpty {
            logger.warning("message not encrypted for some devices", metadata: ["id": "\(id)", "devices": "\(failed.count)"])
        }
        try await writeAwaitingAck(node, id: id, client: client)
        let (own, phash, count) = (ctx.own, out.phash, out.encryptedFor.count)
        return StagedMessage(id: id, chat: chat) { [self] in
            let ack = try await self.accepted(id: id, chat: chat, own: own, client: client)
            await self.issuePrivacyTokenIfDue(to: route.to, client: client)
            await self.checkParticipantHash(ack, ours: phash, chat: chat, own: own)
            if route.to != chat { await self.checkParticipantHash(ack, ours: phash, chat: route.to, own: route.own) }
            return SentMessage(id: id, chat: chat, timestamp: ack.timestamp, phash: ack.phash, deviceCount: count,
                               failedDevices: failed)
        }
    }

    /// The server knows other devices than we used: ask usync again next time.
    private func checkParticipantHash(_ ack: ServerAck, ours: String, chat: JID, own: JID) {
        guard let phash = ack.phash, phash != ours else { return }
        deviceCache.invalidate(chat)
        deviceCache.invalidate(own.nonAD)
    }

    /// A group send: metadata (`w:g2`), every participant's devices (usync), bundles for devices
    /// without a session, our sender key distributed to the member devices that do not hold it
    /// yet, the skmsg, the ack. When a device that held the key is no longer a member (someone
    /// left), the key is rotated and distributed to everyone again.
    private func sendGroup(_ message: WAE2E_Message, group: JID, id: String, ctx: Context, client: WAClient) async throws -> SentMessage {
        let info = try await groupMetadata(group, client: client)
        // A LID group is sent as our LID device, to the members' LID devices (whatsmeow send.go).
        let lidGroup = info.addressingMode == .lid
        let ownAddress = lidGroup ? try ownLIDDevice(ctx) : ctx.own
        var users = info.sendAddresses
        if !users.contains(ownAddress.nonAD) { users.append(ownAddress.nonAD) }
        let lists = try await devices(of: users, client: client)
        let all = users.flatMap { lists[$0]?.devices ?? [] }
        let sender = MessageSender(store: ctx.store, ownDevice: ownAddress, deviceIdentity: ctx.deviceIdentity,
                                   lidUsers: await lidUsers(of: users, store: ctx.store))
        let holders = senderKeyHolders[group] ?? []
        let rotate = !holders.isSubset(of: Set(all))
        let needKey = rotate ? all : all.filter { !holders.contains($0) }
        let bundles = try await fetchBundles(try await sender.devicesNeedingBundles(needKey), client: client)
        let out = try await sender.groupMessage(
            id: id, group: group, message: message, participantDevices: all,
            devicesWithSenderKey: rotate ? [] : holders, bundles: bundles, rotateSenderKey: rotate,
            addressingMode: lidGroup ? .lid : nil)
        recent.insert(message, chat: group, id: id)
        try await writeAwaitingAck(out.node, id: id, client: client)
        let ack: ServerAck
        do { ack = try await accepted(id: id, chat: group, own: ctx.own, client: client) } catch let error as WAClientError
            where error.code == .serverError {
            // Refused (not a member any more, addressed wrongly): ask for the metadata again next time.
            groupCache.invalidate(group)
            throw error
        }
        if let phash = ack.phash, phash != out.phash {
            // The server counts other devices than we did: members changed (whatsmeow drops its entry too).
            groupCache.invalidate(group)
            logger.info("group participant hash differs; metadata dropped from the cache")
        }
        rememberHolders((rotate ? [] : holders).union(out.encryptedFor), group: group)
        let failed = DeviceSendFailure.list(out.skipped)
        if !failed.isEmpty {
            logger.warning("group message not encrypted for some devices", metadata: ["id": "\(id)", "devices": "\(failed.count)"])
        }
        return SentMessage(id: id, chat: group, timestamp: ack.timestamp, phash: ack.phash, deviceCount: out.encryptedFor.count,
                           failedDevices: failed)
    }

    /// Our own device as a LID (`lid:device@lid`), as the server told us at login.
    private func ownLIDDevice(_ ctx: Context) throws -> JID {
        guard let lid = ctx.record.lid, lid.server == JID.lidServer else {
            throw WAClientError(.invalidRecipient, "a LID group needs our LID, and the server has not told it yet")
        }
        return JID(user: lid.user, device: ctx.own.device, server: JID.lidServer)
    }

    /// The group's metadata: from the cache, else one `w:g2` query (shared by concurrent sends).
    private func groupMetadata(_ group: JID, client: WAClient) async throws -> GroupMetadata {
        if let cached = groupCache.metadata(of: group) { return cached }
        if let running = groupFetches[group] { return try await running.value }
        let id = nextID("g")
        let epoch = groupEpoch
        let fetch = Task { try GroupNodes.parseMetadata(try await client.sendIQ(GroupNodes.metadataQueryIQ(id: id, group: group)), group: group) }
        groupFetches[group] = fetch
        defer { groupFetches[group] = nil }
        let metadata = try await fetch.value
        if epoch == groupEpoch { groupCache.store(metadata) }
        return metadata
    }

    /// A group changed (`w:gp2`): its cached metadata is stale; a create notification brings it whole.
    func applyGroupNotification(_ node: Node) {
        let notification: GroupNotification
        do { notification = try GroupNotification(parsing: node) } catch {
            logger.info("group notification ignored (malformed)",
                        metadata: ["error": "\((error as? WAClientError)?.code.rawValue ?? "?")"])
            return
        }
        groupEpoch += 1
        let dropped = groupCache.invalidate(notification.group)
        for case .create(let metadata) in notification.changes { groupCache.store(metadata) }
        logger.debug("group notification", metadata: ["dropped": "\(dropped)", "changes": "\(notification.changes.count)"])
    }

    /// The cached metadata of a group (tests, diagnostics).
    func cachedGroup(_ group: JID) -> GroupMetadata? { groupCache.metadata(of: group) }

    /// A user linked or unlinked a device: update (or drop) the cached list.
    func applyDeviceNotification(_ node: Node) async {
        guard let notification = try? DeviceListNotification(parsing: node) else {
            logger.info("devices notification ignored (malformed)")
            return
        }
        let outcome = deviceCache.apply(notification)
        // The user's list may be cached under its LID too (a LID-addressed send asked for it).
        var lid = notification.lid
        if lid == nil { lid = await self.lid(forPN: notification.user) }
        if let lid, let mapping = try? LIDMapping(lid, notification.user) {
            await learn([mapping])
            deviceCache.apply(notification, lid: mapping.lid)
        }
        logger.debug("device list notification", metadata: ["outcome": "\(outcome)"])
    }

    /// Our own user linked or unlinked a device (`account_sync`): replace (or drop) our list.
    func applyOwnDevices(_ notification: OwnDevicesNotification, client: WAClient) async {
        guard let record = await client.device, let own = record.jid else { return }
        let outcome = deviceCache.apply(own: notification, user: own)
        if let lid = record.lid { deviceCache.apply(own: notification, user: own, lid: lid) }
        logger.debug("own device list notification", metadata: ["outcome": "\(outcome)"])
    }

    /// The cached devices of `user` (tests, diagnostics); for a number whose list is cached
    /// under its LID, that list in phone-number form.
    func cachedDevices(of user: JID) async -> [JID]? {
        if let lid = await lid(forPN: user), let devices = deviceCache.devices(of: lid)?.devices {
            return devices.map { JID(user: user.user, device: $0.device, server: user.server) }
        }
        return deviceCache.devices(of: user)?.devices
    }

    private func rememberHolders(_ devices: Set<JID>, group: JID) {
        if senderKeyHolders.updateValue(devices, forKey: group) == nil {
            holderOrder.append(group)
            if holderOrder.count > Self.maxTrackedGroups { senderKeyHolders[holderOrder.removeFirst()] = nil }
        }
    }

    func devices(of users: [JID], client: WAClient) async throws -> [JID: UsyncNodes.UserDevices] {
        var out: [JID: UsyncNodes.UserDevices] = [:]
        var ask: [JID] = []
        for user in users {
            if let known = deviceCache.devices(of: user) { out[user] = known } else { ask.append(user) }
        }
        var start = 0
        while start < ask.count {
            let batch = Array(ask[start..<min(ask.count, start + configuration.usyncBatch)])
            start += batch.count
            let answer = try await client.sendIQ(UsyncNodes.deviceQueryIQ(id: nextID("us"), sid: nextID("sid"), users: batch))
            var mappings: [LIDMapping] = []
            for user in try UsyncNodes.parseDeviceAnswer(answer) {
                deviceCache.store(user)
                out[user.user] = user
                if let lid = user.lid, user.user.server == JID.userServer, let mapping = try? LIDMapping(lid, user.user) {
                    mappings.append(mapping)
                }
            }
            await learn(mappings)
        }
        return out
    }

    private func fetchBundles(_ devices: [JID], client: WAClient, reason: String? = nil) async throws -> [JID: PreKeyBundle] {
        var out: [JID: PreKeyBundle] = [:]
        var start = 0
        while start < devices.count {
            let batch = Array(devices[start..<min(devices.count, start + configuration.bundleBatch)])
            start += batch.count
            let answer = try await client.sendIQ(PreKeyNodes.bundleQueryIQ(id: nextID("pk"), devices: batch, reason: reason))
            for (device, result) in try PreKeyNodes.parseBundles(answer) {
                if case .success(let bundle) = result { out[device] = bundle }
            }
        }
        return out
    }

    /// Waits for the server's ack of a written stanza; a refusal (`<ack error>`) or no ack
    /// within `ackTimeout` is published as status `failed` for the message and thrown.
    private func accepted(id: String, chat: JID, own: JID, client: WAClient) async throws -> ServerAck {
        let ack: ServerAck
        do { ack = try await awaitAck(id) } catch let error as WAClientError where error.code == .ackTimeout {
            await client.emit(.messageStatus(.init(
                status: .failed(code: MessageStatus.noServerAck), messageIDs: [id], chat: chat, by: own, isSelf: true,
                timestamp: Date())))
            throw error
        }
        if case .failed(let code) = ack.status {
            await client.emit(.messageStatus(.init(
                status: ack.status, messageIDs: [id], chat: chat, by: own, isSelf: true, timestamp: ack.timestamp)))
            throw WAClientError(.serverError, "server refused message with error \(code)")
        }
        // `sent` as a status event too, so a bridge sees every message leave, whoever asked for it.
        await client.emit(.messageStatus(.init(
            status: ack.status, messageIDs: [id], chat: chat, by: own, isSelf: true, timestamp: ack.timestamp)))
        return ack
    }

    /// Takes an ack slot and writes the stanza; the ack timeout runs from here, so a
    /// staged message nobody waits for yet still fails on time.
    private func writeAwaitingAck(_ node: Node, id: String, client: WAClient) async throws {
        guard pendingAcks.count < configuration.maxPendingSends else {
            throw WAClientError(.limitExceeded, "\(pendingAcks.count) sends waiting for an ack")
        }
        guard pendingAcks[id] == nil else { throw WAClientError(.invalidRecipient, "message id already in flight") }
        counter += 1
        let write = counter
        pendingAcks[id] = .registered(write)
        do { try await client.send(node) } catch {
            pendingAcks[id] = nil
            throw error
        }
        let timeout = configuration.ackTimeout
        Task { [weak self] in
            try? await Task.sleep(for: timeout)
            await self?.expireAck(id, write: write)
        }
    }

    /// The ack of a written stanza (already in, or when it comes); frees its slot.
    private func awaitAck(_ id: String) async throws -> ServerAck {
        try await withCheckedThrowingContinuation { continuation in
            switch pendingAcks[id] {
            case .arrived(let ack):
                pendingAcks[id] = nil
                continuation.resume(returning: ack)
            case .linkClosed:
                pendingAcks[id] = nil
                continuation.resume(throwing: WAClientError(.connectionClosed, "the link closed before the server's ack"))
            case .timedOut:
                pendingAcks[id] = nil
                continuation.resume(throwing: WAClientError(.ackTimeout, "no server ack for a message"))
            case .registered(let write):
                pendingAcks[id] = .waiting(continuation, write)
            case .waiting, nil:
                continuation.resume(throwing: WAClientError(.invalidRecipient, "no send of this message id is in flight"))
            }
        }
    }

    /// Frees the slot and fails the send; an ack that comes later finds no entry and is dropped.
    func failPendingAcks() {
        for (id, entry) in pendingAcks {
            switch entry {
            case .waiting(let continuation, _):
                pendingAcks[id] = nil
                continuation.resume(throwing: WAClientError(.connectionClosed, "the link closed before the server's ack"))
            case .registered:
                // Its sender is still writing: it finds this and fails at once too.
                pendingAcks[id] = .linkClosed
            case .arrived, .linkClosed, .timedOut:
                break  // an outcome already known is kept for its sender
            }
        }
    }

    private func expireAck(_ id: String, write: UInt64) {
        switch pendingAcks[id] {
        case .waiting(let continuation, write):
            pendingAcks[id] = nil
            logger.warning("no server ack for a message", metadata: ["id": "\(id)"])
            continuation.resume(throwing: WAClientError(.ackTimeout, "no server ack for a message"))
        case .registered(write):
            // Staged, not awaited yet: its sender finds the timeout when it asks.
            logger.warning("no server ack for a message", metadata: ["id": "\(id)"])
            pendingAcks[id] = .timedOut
        default:
            break
        }
    }

    func receiveAck(_ node: Node) {
        guard let ack = try? ServerAck(parsing: node) else { return }
        switch pendingAcks[ack.messageID] {
        case .registered: pendingAcks[ack.messageID] = .arrived(ack)
        case .waiting(let continuation, _):
            pendingAcks[ack.messageID] = nil
            continuation.resume(returning: ack)
        default: break
        }
    }

    // MARK: Receive

    /// Decrypts, answers with a receipt, publishes, then acks (the server keeps an unacked
    /// stanza and delivers it again on the next login; a second copy decrypts as a duplicate
    /// and is not published twice).
    func receiveMessage(_ node: Node, client: WAClient) async {
        if await decryptAndPublish(node, client: client) {
            await client.ack(node)
        }
    }

    /// Hands a decrypted message to `onMessage`; false when the handler failed
    /// (its plaintext stays in the store for the redelivery, within the bounds).
    private func handOver(_ message: ReceivedMessage, key: String, store: any SignalProtocolStore) async -> Bool {
        guard let onMessage else { return true }
        do {
            try await onMessage(message)
        } catch {
            logger.warning("message handler failed; receipt withheld", metadata: ["id": "\(message.id)"])
            await prunePending(store)
            return false
        }
        do { try await store.removePendingPlaintexts(stanza: key) } catch {
            // Harmless: the stanza is acknowledged next, and pruning drops the row later.
            logger.warning("kept plaintext not removed", metadata: ["error": "\(type(of: error))"])
        }
        return true
    }

    func pruneKeptPlaintexts(client: WAClient) async {
        guard onMessage != nil, let ctx = try? await context(client) else { return }
        await prunePending(ctx.store)
    }

    /// Applies the bounds to the plaintexts kept for redelivery.
    func prunePending(_ store: any SignalProtocolStore) async {
        do {
            let dropped = try await store.prunePendingPlaintexts(
                keepingNewest: configuration.unhandledMessages,
                storedBefore: Date().addingTimeInterval(-configuration.unhandledMaxAge))
            if dropped > 0 { logger.warning("unhandled messages dropped by the bounds", metadata: ["count": "\(dropped)"]) }
        } catch {
            logger.warning("pruning kept plaintexts failed", metadata: ["error": "\(type(of: error))"])
        }
    }

    /// Returns whether the stanza may be acknowledged to the server.
    private func decryptAndPublish(_ node: Node, client: WAClient) async -> Bool {
        let ctx: Context
        do { ctx = try await context(client) } catch {
            // Not paired: nothing to decrypt with, ever. A store that cannot be opened now
            // (too many files, I/O): withhold the ack so the server delivers it again.
            guard let e = error as? WAClientError, e.code == .store else { return true }
            logger.warning("message left unacknowledged: signal store unavailable", metadata: ["error": "\(e.code)"])
            return false
        }
        if receiver == nil || receiverDevice != ctx.own {
            // From the second retry on, our retry receipts carry keys (a new one-time prekey, the
            // signed prekey, our identity and ADV identity) so the sender need not fetch a bundle.
            let (provider, store, record, identity) = (self.provider, ctx.store, ctx.record, ctx.deviceIdentity)
            receiver = MessageReceiver(store: ctx.store, ownDevice: ctx.own, ownLID: ctx.record.lid, retryKeys: {
                guard let id = try await provider.allocatePreKeyIDs(1).first else {
                    throw WAClientError(.store, "no prekey id")
                }
                let preKey = PreKeyRecord(id: id, keyPair: .generate())
                try await store.storePreKey(preKey)
                return RetryReceipt.Keys(
                    identity: record.identityKey.publicKey, preKey: preKey, signedPreKey: record.signedPreKey.signalRecord,
                    deviceIdentity: identity)
            })
            receiver?.keepPlaintexts = onMessage != nil
            receiverDevice = ctx.own
        }
        do { await learn(try MessageAddressing.mappings(in: node), store: ctx.store) } catch {
            logger.info("message addressing attributes ignored (malformed)")
        }
        let senderLID = await encryptionLID(of: node)
        var working = receiver!
        let outcome: ReceiveOutcome
        do { outcome = try await working.receive(node, senderLID: senderLID) } catch {
            receiver = working
            // A stanza that names itself (id, from) is reported; one that does not cannot be.
            guard let failed = Self.failure(of: node, error) else {
                logger.warning("message dropped: no id or sender", metadata: ["error": "\((error as? WAClientError)?.code.rawValue ?? "?")"])
                return true
            }
            outcome = .undecryptable(failed, retryReceipt: nil)
        }
        receiver = working
        let key = MessageReceiver.stanzaKey(node)
        switch outcome {
        case .message(let response, let receipt) where Self.isPlaceholderResponse(response):
            // Our phone hands over messages the server could not: each is delivered as received.
            for recovered in placeholderMessages(in: response) {
                let message = await presented(recovered)
                guard await handOver(message, key: key, store: ctx.store) else { return false }
                placeholderRequests[message.id] = nil
                noteRecovered(message.id)
                await client.emit(.messageReceived(message))
            }
            if onMessage != nil { try? await ctx.store.removePendingPlaintexts(stanza: key) }
            try? await client.send(receipt)
            try? await client.send(Node("receipt", attributes: [
                "id": .string(response.id), "type": "peer_msg", "to": .jid(ctx.own.nonAD),
            ]))
        case .message(let message, let receipt) where Self.isPhoneSyncMessage(message):
            // App-state keys and history-sync notifications from our phone are not user messages:
            // received, answered as whatsmeow answers them (receipt, `hist_sync` receipt, `peer_msg`
            // receipt) and acked, not published. Consuming them is the sync feature's job.
            if onMessage != nil { try? await ctx.store.removePendingPlaintexts(stanza: key) }
            let proto = message.message.protocolMessage
            if proto.hasHistorySyncNotification {
                await receiveHistoryNotification(proto.historySyncNotification, id: message.id, client: client)
            }
            try? await client.send(receipt)
            if proto.hasAppStateSyncKeyShare, let appState = await client.appState {
                Task { await appState.receiveKeyShare(message, client: client) } // app state (WAClient/AppState)
            }
            for type in message.message.protocolMessage.hasHistorySyncNotification ? ["hist_sync", "peer_msg"] : ["peer_msg"] {
                try? await client.send(Node("receipt", attributes: [
                    "id": .string(message.id), "type": .string(type), "to": .jid(ctx.own.nonAD),
                ]))
            }
            logger.debug("phone sync message received", metadata: [
                "id": "\(message.id)", "kind": "\(message.message.protocolMessage.type)",
            ])
        case .message(let addressed, let receipt) where !settleRecovery(addressed.id):
            // Our phone's answer delivered it already: this is the sender's retry, a second copy.
            if onMessage != nil { try? await ctx.store.removePendingPlaintexts(stanza: key) }
            try? await client.send(receipt)
        case .message(let addressed, let receipt):
            let message = await presented(addressed)
            guard await handOver(message, key: key, store: ctx.store) else { return false }
            try? await client.send(receipt)
            if let change = message.identityChange { await client.emit(.identityChanged(change)) }
            await client.emit(.messageReceived(message))
        case .undecryptable(var failed, let retryReceipt):
            if failed.reason == .unavailable {
                failed.phoneResendRequested = await requestFromPhone(failed, ctx: ctx, client: client)
            } else if let delay = schedulePhoneRequest(failed, ctx: ctx, client: client) {
                failed.phoneResendRequested = true
                failed.phoneResendDelay = delay
            }
            logger.info("message undecryptable", metadata: [
                "id": "\(failed.id)", "reason": "\(failed.reason.rawValue)", "retry": "\(failed.retryRequested)",
            ])
            if let onUndecryptable {
                do { try await onUndecryptable(failed) } catch {
                    logger.warning("undecryptable message not handed over; ack withheld", metadata: ["id": "\(failed.id)"])
                    return false
                }
            }
            if let retryReceipt { try? await client.send(retryReceipt) }
            await client.emit(.messageUndecryptable(failed))
        case .ignored(_, _, let receipt):
            // A duplicate: handed over before (a kept plaintext would have been served instead).
            try? await client.send(receipt)
        }
        return true
    }

    /// The failure of a stanza the receive path refused as a whole (malformed, store error), when it
    /// names its id and sender; nil when it does not.
    static func failure(of node: Node, _ error: any Error) -> UndecryptableMessage? {
        guard let id = node.string("id"), !id.isEmpty, id.count <= 128, let from = node.jid("from") else { return nil }
        let isGroup = from.server == JID.groupServer || from.server == JID.broadcastServer
        let sender = isGroup ? (node.jid("participant") ?? from) : from
        let clientError = error as? WAClientError ?? WAClientError(.store, "receive: \(type(of: error))")
        return UndecryptableMessage(id: id, chat: from.nonAD, sender: sender, error: clientError, retryCount: nil,
                                    reason: UndecryptableReason(error))
    }

    /// The server says `user`'s identity changed: drop every session and trusted identity of the
    /// user (the next message to or from them starts over from a bundle or pkmsg), and publish it.
    func identityChangeAnnounced(by user: JID, client: WAClient) async {
        // The server may name the user by phone number while its sessions live under its LID
        // (or the reverse): both forms are dropped.
        var users = [user.nonAD]
        if let lid = await lid(forPN: user) { users.append(lid.nonAD) }
        if let pn = await pn(forLID: user) { users.append(pn.nonAD) }
        do {
            let ctx = try await context(client)
            var changes: [IdentityChange] = []
            for each in users {
                let address = SignalAddress(jid: each)
                let previous = try await ctx.store.identity(for: address)
                let dropped = try await ctx.store.deleteAllSessionsAndIdentities(named: address.name)
                logger.info("identity change announced: sessions dropped", metadata: ["sessions": "\(dropped.count)"])
                if previous != nil || !dropped.isEmpty { changes.append(IdentityChange(address: address, previousKey: previous, newKey: nil)) }
            }
            if changes.isEmpty { changes = [IdentityChange(address: SignalAddress(jid: user.nonAD), previousKey: nil, newKey: nil)] }
            for change in changes { await client.emit(.identityChanged(change)) }
            await reissuePrivacyToken(after: user, client: client)
        } catch {
            logger.warning("identity change not applied", metadata: ["error": "\((error as? WAClientError)?.code.rawValue ?? "\(type(of: error))")"])
        }
    }

    /// A protocol message from our own primary phone carrying app-state sync keys or a history-sync
    /// notification (whatsmeow message.go handleProtocolMessage handles these apart from messages).
    static func isPhoneSyncMessage(_ message: ReceivedMessage) -> Bool {
        guard message.isFromMe, message.sender.device == 0, message.message.hasProtocolMessage else { return false }
        let proto = message.message.protocolMessage
        return proto.hasHistorySyncNotification || proto.hasAppStateSyncKeyShare
    }

    func receiveReceipt(_ node: Node, client: WAClient) async {
        var parsed: ReceiptEvent?
        do { parsed = try ReceiptEvent(parsing: node) } catch {
            // Acked (a redelivery would not parse either) but said: a status may be missing.
            logger.warning("receipt not understood; acked without a status", metadata: [
                "id": "\(String((node.string("id") ?? "").prefix(128)))",
                "error": "\((error as? WAClientError)?.code.rawValue ?? "\(type(of: error))")",
            ])
        }
        if case .status(let update)? = parsed { parsed = .status(await presented(update)) }
        if case .status(let update)? = parsed, let onStatus {
            do { try await onStatus(update) } catch {
                // Not acked: the server keeps the receipt and sends it again.
                logger.warning("receipt left unacknowledged: its status was not handed over",
                               metadata: ["error": "\(type(of: error))"])
                return
            }
        }
        await client.ack(node)
        guard let event = parsed else { return }
        switch event {
        case .status(let update): await client.emit(.messageStatus(update))
        case .retry(let retry): Task { await self.answerRetry(retry, client: client) }
        case .other: break
        }
    }

    private func answerRetry(_ retry: RetryReceipt, client: WAClient) async {
        do {
            let ctx = try await context(client)
            // By id: the receipt may name the chat by another address than our send did.
            guard let sent = recent.entry(id: retry.messageID) else {
                logger.info("retry receipt for a message no longer cached")
                return
            }
            let (message, chat) = (sent.message, sent.chat)
            // A retry from one of our LID devices: we speak as our LID there.
            let own = retry.device.server == JID.lidServer ? (ownLID(ctx) ?? ctx.own) : ctx.own
            let sender = MessageSender(store: ctx.store, ownDevice: own, deviceIdentity: ctx.deviceIdentity,
                                       lidUsers: await lidUsers(of: [retry.device.nonAD], store: ctx.store))
            var fetched: PreKeyBundle?
            if retry.wantsFreshBundle {
                fetched = try await fetchBundles([retry.device], client: client, reason: "identity")[retry.device]
            }
            try await client.send(try await sender.resend(message, chat: chat, for: retry, bundle: fetched))
        } catch {
            logger.warning("retry resend failed", metadata: ["error": "\((error as? WAClientError)?.code.rawValue ?? "?")"])
        }
    }
}
