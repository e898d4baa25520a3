import Foundation
import WABinary
import WAProto
import WASignal

/// Privacy tokens on the messaging state (whatsmeow tctoken.go, cstoken.go, send.go): the
/// peer's `<tctoken>` rides on each DM while it lives, else a `<cstoken>` derived from the
/// account's NCT salt; after a DM we issue our own token to the peer once per weekly bucket.
/// Tokens are stored under the peer's LID where known, as whatsmeow does.
extension MessagingState {
    var privacyStore: (any PrivacyTokenStore)? { provider as? any PrivacyTokenStore }

    /// The user a token of `jid` is stored under: its LID when known, else the JID itself.
    func tokenStorageUser(_ jid: JID) async -> JID {
        let user = jid.nonAD
        guard user.server == JID.userServer else { return user }
        return await lid(forPN: user) ?? user
    }

    /// `<notification type=privacy_token>`: the peer's tokens, stored (bad stanzas are logged, never fatal).
    func receivePrivacyTokens(_ node: Node) async {
        guard let store = privacyStore else { return }
        do {
            let parsed = try PrivacyTokenNotification(parsing: node)
            if let lid = parsed.senderLID, let mapping = try? LIDMapping(lid, parsed.sender) { await learn([mapping]) }
            // Under the LID where this client addresses by LID; a client without a LID table
            // looks tokens up by number.
            let user: JID
            if let lid = parsed.senderLID, lids != nil { user = lid } else { user = await tokenStorageUser(parsed.sender) }
            try await store.storePrivacyTokens(parsed.tokens.map { PrivacyToken(user: user, token: $0.token, timestamp: $0.timestamp) })
            forgetCachedToken(user)
            logger.debug("privacy tokens stored", metadata: ["count": "\(parsed.tokens.count)"])
        } catch let error as WAClientError {
            logger.info("privacy_token notification ignored", metadata: ["error": "\(error.code.rawValue)"])
        } catch {
            logger.warning("privacy tokens not stored", metadata: ["error": "\(type(of: error))"])
        }
    }

    /// The token child for a DM to `to`: a live `<tctoken>`, else a `<cstoken>`, else nil.
    func privacyTokenNode(for to: JID) async -> Node? {
        guard PrivacyTokens.applies(to: to), let store = privacyStore else { return nil }
        let storage = await tokenStorageUser(to)
        if let stored = await cachedToken(storage, store: store) {
            if let sent = stored.senderTimestamp, issuedTokens[storage] == nil { rememberIssued(sent, for: storage) }
            if !stored.token.isEmpty, !PrivacyTokens.isExpired(stored.timestamp) {
                return Node("tctoken", content: .bytes([UInt8](stored.token)))
            }
        }
        if storage.server == JID.lidServer, let salt = await cachedSalt(store),
           let token = PrivacyTokens.csToken(salt: salt, recipientLID: storage) {
            return Node("cstoken", content: .bytes([UInt8](token)))
        }
        return nil
    }

    /// As `privacyTokenNode`, but while this login's offline batch is still coming (it carries
    /// the phone's history sync with the salt and tokens, and `privacy_token` notifications),
    /// a DM that has neither waits for it, at most `privacyTokenWait`.
    func privacyTokenNodeWaitingForOffline(for to: JID) async -> Node? {
        guard PrivacyTokens.applies(to: to), privacyStore != nil else { return nil }
        if let node = await privacyTokenNode(for: to) { return node }
        guard !offlineSynced else { return nil }
        await awaitOfflineSync()
        return await privacyTokenNode(for: to)
    }

    private func awaitOfflineSync() async {
        guard !offlineSynced else { return }
        let ticket = nextOfflineTicket()
        let wait = configuration.privacyTokenWait
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            offlineWaiters[ticket] = continuation
            Task { [weak self] in
                try? await Task.sleep(for: wait)
                await self?.resumeOfflineWaiter(ticket)
            }
        }
    }

    private func resumeOfflineWaiter(_ ticket: UInt64) {
        offlineWaiters.removeValue(forKey: ticket)?.resume()
    }

    /// `<ib><offline/>`: waiting DMs go on.
    func offlineSyncDone() {
        offlineSynced = true
        let waiting = offlineWaiters
        offlineWaiters = [:]
        for continuation in waiting.values { continuation.resume() }
    }

    /// A new connection: its offline batch is yet to come.
    func offlineSyncReset() { offlineSynced = false }

    /// After an accepted DM: issue our token to the peer when a new bucket began since the last
    /// issue (whatsmeow send.go → issuePrivacyTokenAndSave), in the background.
    func issuePrivacyTokenIfDue(to: JID, client: WAClient) async {
        guard PrivacyTokens.applies(to: to), let store = privacyStore else { return }
        let storage = await tokenStorageUser(to)
        let now = Date()
        guard PrivacyTokens.isIssueDue(lastIssued: issuedTokens[storage], now: now) else { return }
        // Noted before the answer, so concurrent sends to one peer issue once.
        rememberIssued(now, for: storage)
        Task { [weak self] in await self?.issuePrivacyToken(to: storage, at: now, store: store, client: client) }
    }

    private func issuePrivacyToken(to peer: JID, at timestamp: Date, store: any PrivacyTokenStore, client: WAClient) async {
        do {
            let answer = try await client.sendIQ(PrivacyTokens.issueIQ(id: MessageID.random(), peer: peer, timestamp: timestamp))
            try IQStanza.checkResult(answer, "privacy token issue")
            try await store.setPrivacyTokenSenderTimestamp(timestamp, for: peer)
            forgetCachedToken(peer)
            privacyTokensIssued += 1
        } catch {
            if issuedTokens[peer] == timestamp { issuedTokens[peer] = nil }
            logger.info("privacy token not issued", metadata: ["error": "\((error as? WAClientError)?.code.rawValue ?? "\(type(of: error))")"])
        }
    }

    /// The peer's identity changed: issue our token again with the timestamp it had, if it is
    /// still live (whatsmeow notification.go, WAWebSendTcTokenWhenDeviceIdentityChange).
    func reissuePrivacyToken(after user: JID, client: WAClient) async {
        guard PrivacyTokens.applies(to: user), let store = privacyStore else { return }
        let storage = await tokenStorageUser(user)
        var sent = issuedTokens[storage]
        if sent == nil { sent = await cachedToken(storage, store: store)?.senderTimestamp }
        guard let sent, !PrivacyTokens.isExpired(sent) else { return }
        Task { [weak self] in await self?.issuePrivacyToken(to: storage, at: sent, store: store, client: client) }
    }

    private func rememberIssued(_ timestamp: Date, for user: JID) {
        if issuedTokens.count >= Self.maxIssuedTokens {
            let cutoff = PrivacyTokens.cutoff()
            issuedTokens = issuedTokens.filter { $0.value >= cutoff }
            if issuedTokens.count >= Self.maxIssuedTokens { issuedTokens.removeAll() }
        }
        issuedTokens[user] = timestamp
    }

    /// Expired tokens leave the store, at most once a day (whatsmeow tcTokenDBPruneInterval).
    func pruneExpiredPrivacyTokens() async {
        guard let store = privacyStore, lastTokenPrune.map({ Date().timeIntervalSince($0) >= 86_400 }) ?? true else { return }
        lastTokenPrune = Date()
        if let deleted = try? await store.deleteExpiredPrivacyTokens(before: PrivacyTokens.cutoff()), deleted > 0 {
            logger.debug("expired privacy tokens removed", metadata: ["count": "\(deleted)"])
        }
    }

    // MARK: History sync (the parts this layer uses)

    /// The inline payload of a notification through `ingestHistory` (throws typed errors for one
    /// that does not inflate or parse).
    func ingestInlineHistory(_ notification: WAE2E_HistorySyncNotification) async throws {
        guard notification.hasInitialHistBootstrapInlinePayload else { return }
        try await ingestHistory(Self.decodeHistory(notification.initialHistBootstrapInlinePayload))
    }

    /// What the client itself keeps of a history-sync chunk (whatsmeow DownloadHistorySync's
    /// storage part): the PN↔LID mappings, the NCT salt and the conversations' privacy tokens.
    /// Returns how many mappings it carried.
    @discardableResult
    func ingestHistory(_ history: WAHistorySync_HistorySync) async throws -> Int {
        var mappings: [LIDMapping] = []
        for entry in history.phoneNumberToLidMappings.prefix(Self.maxHistoryEntries) {
            guard let pn = JID(entry.pnJid), let lid = JID(entry.lidJid), let mapping = try? LIDMapping(pn, lid) else { continue }
            mappings.append(mapping)
        }
        await learn(mappings)
        guard let store = privacyStore else { return mappings.count }
        if history.hasNctSalt, !history.nctSalt.isEmpty {
            try await store.storeNCTSalt(history.nctSalt)
            saltCache = .some(history.nctSalt)
        }
        var tokens: [PrivacyToken] = []
        for conversation in history.conversations.prefix(Self.maxHistoryEntries) where conversation.hasTcToken && !conversation.tcToken.isEmpty {
            guard let chat = JID(conversation.id), PrivacyTokens.applies(to: chat),
                  conversation.tcToken.count <= PrivacyTokenNotification.maxTokenBytes else { continue }
            let sender = conversation.tcTokenSenderTimestamp > 0
                ? Date(timeIntervalSince1970: TimeInterval(conversation.tcTokenSenderTimestamp)) : nil
            tokens.append(PrivacyToken(
                user: await tokenStorageUser(chat), token: conversation.tcToken,
                timestamp: Date(timeIntervalSince1970: TimeInterval(conversation.tcTokenTimestamp)), senderTimestamp: sender))
        }
        try await store.storePrivacyTokens(tokens)
        for token in tokens { forgetCachedToken(token.user) }
        logger.info("history sync read", metadata: [
            "mappings": "\(mappings.count)", "tokens": "\(tokens.count)", "salt": "\(history.hasNctSalt && !history.nctSalt.isEmpty)",
        ])
        return mappings.count
    }

    // MARK: Read cache: a DM reads the peer's token and the salt; both change only through this actor.

    private func cachedToken(_ user: JID, store: any PrivacyTokenStore) async -> PrivacyToken? {
        if let cached = tokenCache[user] { return cached }  // nil inside: known to have none
        let loaded: PrivacyToken?
        do { loaded = try await store.privacyToken(for: user) } catch { return nil }  // a failed read is not cached
        if tokenCache.count >= Self.maxCachedTokens { tokenCache.removeAll() }
        tokenCache[user] = .some(loaded)
        return loaded
    }

    func forgetCachedToken(_ user: JID) { tokenCache[user] = nil }

    private func cachedSalt(_ store: any PrivacyTokenStore) async -> Data? {
        if let cached = saltCache { return cached }
        let loaded: Data?
        do { loaded = try await store.nctSalt() } catch { return nil }
        saltCache = .some(loaded)
        return loaded
    }

    /// A new login (possibly of another account after a logout): read from the store again.
    func resetPrivacyCaches() {
        tokenCache.removeAll()
        saltCache = nil
    }

    static let maxCachedTokens = 10_000
    static let maxInlineHistory = 16 << 20
    static let maxHistoryEntries = 100_000
}
