import Foundation
import Logging
import SwiftProtobuf
import WABinary
import WAProto

/// App-state sync (whatsmeow appstate.go, message.go handleAppStateSyncKeyShare,
/// notification.go handleAppStateNotification): keeps the phone's sync keys, fetches the
/// collections (`w:sync:app:state`), verifies every MAC and applies contacts, our push name,
/// mute/pin/archive and the NCT salt. A patch that fails is refused whole (nothing of it is
/// stored), published as `WAEvent.appStateSyncFailed`, and the link stays up.
///
/// It claims no stanza: MessagingFeature hands it the phone's key shares (phone-sync branch)
/// and `server_sync` notifications.
public final class AppStateFeature: WAClientFeature {
    public typealias Store = AppStateStore & PrivacyTokenStore & LIDMappingStore
    let state: AppStateState

    public init(store: any Store, limits: AppStateLimits = AppStateLimits(),
                logger: Logger = Logger(label: "wabridge.waclient.appstate")) {
        state = AppStateState(store: store, limits: limits, logger: logger)
    }

    public func didLogin(_ info: LoginInfo, client: WAClient) async {
        // Keys from an earlier link: catch up with what changed while we were away.
        guard await state.hasKeys() else { return }
        await state.fetch(AppStateCollection.all, client: client)
    }

    /// Collections synced so far (tests and diagnostics): name → version.
    public var versions: [String: UInt64] { get async { await state.versions } }
    /// Failures seen, oldest first (collection, error code), bounded.
    public var failures: [(collection: String, code: String)] { get async { await state.failures } }
    /// How many key requests were sent to the phone.
    public var keyRequestsSent: Int { get async { await state.keyRequestsSent } }
    /// How many fetch rounds finished (success or failure), for tests to wait on.
    public var fetchesDone: Int { get async { await state.fetchesDone } }
    /// How many snapshots were applied, and how many patches came with external mutations (tests).
    public var snapshotsApplied: Int { get async { await state.snapshotsApplied } }
    public var externalPatchesApplied: Int { get async { await state.externalPatches } }
    /// PN↔LID pairs taken from contacts and `pnForLidChat` entries.
    public var lidMappingsLearned: Int { get async { await state.lidMappingsLearned } }

    /// Our phone shared sync keys (`protocolMessage{appStateSyncKeyShare}`, a peer message).
    func receiveKeyShare(_ message: ReceivedMessage, client: WAClient) async {
        // Only our own phone may give us keys (whatsmeow checks the sender is our device 0).
        guard message.isFromMe, message.sender.device == 0, !message.isGroup else { return }
        await state.receiveKeyShare(message.message.protocolMessage.appStateSyncKeyShare, client: client)
    }

    /// `<notification type=server_sync><collection name version/>…`: fetch those collections.
    func serverSync(_ node: Node, client: WAClient) async {
        let names = node.children("collection").compactMap { $0.string("name") }.filter { AppStateCollection.all.contains($0) }
        guard !names.isEmpty else { return }
        Task { await self.state.fetch(Array(Set(names)).sorted(), client: client) }
    }
}

extension WAClient {
    var appState: AppStateFeature? { features.lazy.compactMap { $0 as? AppStateFeature }.first }
}

/// The one owner of app-state sync state of a client.
actor AppStateState {
    let store: any AppStateFeature.Store
    let limits: AppStateLimits
    let logger: Logger
    static let maxShareKeys = 64
    static let maxRounds = 50
    static let maxFailures = 64
    private(set) var versions: [String: UInt64] = [:]
    private(set) var failures: [(collection: String, code: String)] = []
    private(set) var keyRequestsSent = 0
    private(set) var fetchesDone = 0
    private(set) var snapshotsApplied = 0
    private(set) var externalPatches = 0
    private(set) var lidMappingsLearned = 0
    private var running: Set<String> = []
    private var again: Set<String> = []
    private var requestedKeys: Set<Data> = []
    private var keyCache: [Data: AppStateMutationKeys] = [:]
    private var anyKey = false

    init(store: any AppStateFeature.Store, limits: AppStateLimits, logger: Logger) {
        self.store = store
        self.limits = limits
        self.logger = logger
    }

    func hasKeys() async -> Bool { anyKey }

    func receiveKeyShare(_ share: WAE2E_AppStateSyncKeyShare, client: WAClient) async {
        let keys = share.keys.prefix(Self.maxShareKeys).compactMap { key -> AppStateSyncKey? in
            guard key.hasKeyID, !key.keyID.keyID.isEmpty, key.keyID.keyID.count <= 64, key.keyData.keyData.count == 32 else { return nil }
            let fingerprint = (try? key.keyData.fingerprint.serializedData()) ?? Data()
            return AppStateSyncKey(id: key.keyID.keyID, data: key.keyData.keyData, fingerprint: fingerprint,
                                   timestamp: key.keyData.timestamp)
        }
        guard !keys.isEmpty else { return }
        do { try await store.storeAppStateSyncKeys(keys) } catch {
            logger.warning("app-state keys not stored", metadata: ["error": "\(type(of: error))"])
            return
        }
        anyKey = true
        for key in keys { requestedKeys.remove(key.id) }
        logger.info("app-state keys received", metadata: ["count": "\(keys.count)"])
        await fetch(AppStateCollection.all, client: client)
    }

    private func mutationKeys(_ id: Data) async throws -> AppStateMutationKeys? {
        if let keys = keyCache[id] { return keys }
        guard let key = try await store.appStateSyncKey(id: id) else { return nil }
        let keys = AppStateMutationKeys(syncKey: key.data)
        keyCache[id] = keys
        return keys
    }

    /// Fetches `names` (one at a time each; a fetch asked for while one runs runs again after it).
    func fetch(_ names: [String], client: WAClient) async {
        for name in names {
            if running.contains(name) { again.insert(name); continue }
            running.insert(name)
            repeat {
                again.remove(name)
                await fetchOne(name, client: client)
            } while again.contains(name)
            running.remove(name)
        }
    }

    private func fetchOne(_ name: String, client: WAClient) async {
        defer { fetchesDone += 1 }
        var current = AppStateHashState()
        do {
            current = try await store.appStateVersion(name)
            for _ in 0..<Self.maxRounds {
                let answer = try await client.sendIQ(Node("iq", [
                    Attribute("to", .jid(JID.serverJID)), Attribute("xmlns", "w:sync:app:state"), Attribute("type", "set"),
                ], content: .nodes([Node("sync", content: .nodes([Node("collection", [
                    Attribute("name", .string(name)), Attribute("version", .string(String(current.version))),
                    Attribute("return_snapshot", current.version == 0 ? "true" : "false"),
                ])]))])))
                guard answer.string("type") == "result",
                      let collection = answer.child("sync")?.children("collection").first(where: { $0.string("name") == name }) else {
                    throw WAClientError(.appStateFetchFailed, "sync iq answered \(answer.child("error")?.string("code") ?? "without the collection")")
                }
                if collection.string("type") == "error" {
                    throw WAClientError(.appStateFetchFailed, "collection error \(collection.child("error")?.string("code") ?? "")")
                }
                var list = try AppStatePatchList(parsing: collection, limits: limits)
                list.patches = try await resolvingExternal(list.patches, client: client)
                let decoder = AppStateDecoder(
                    collection: name, limits: limits, key: { [weak self] id in try await self?.mutationKeys(id) },
                    previousValueMAC: { [store] mac in try await store.appStateValueMAC(name, indexMAC: mac) })
                var snapshot: WAServerSync_SyncdSnapshot?
                if let reference = list.snapshotReference {
                    // Only a fresh collection takes a snapshot: it replaces, it does not merge.
                    guard current.version == 0 else { throw WAClientError(.appStateMalformed, "snapshot for a collection at v\(current.version)") }
                    snapshot = try await downloadSnapshot(reference, client: client)
                }
                var missing = try await decoder.missingKeyIDs(list.patches)
                if let snapshot { missing += try await decoder.missingKeyIDs(snapshot).filter { !missing.contains($0) } }
                if !missing.isEmpty {
                    await requestKeys(missing, client: client)
                    logger.info("app-state sync waits for keys", metadata: ["collection": "\(name)", "missing": "\(missing.count)"])
                    return
                }
                if let snapshot {
                    let out = try await decoder.decodeSnapshot(snapshot)
                    let changes = try await apply(out.mutations)
                    try await store.commitAppState(name, state: out.state, removed: [], added: out.addedMACs, changes: changes)
                    current = out.state
                    snapshotsApplied += 1
                }
                // Patches the snapshot already holds are skipped (whatsmeow applies only later versions).
                for patch in list.patches where patch.version.version > current.version {
                    let out = try await decoder.decode(patch, current: current)
                    let changes = try await apply(out.mutations)
                    try await store.commitAppState(name, state: out.state, removed: out.removedMACs, added: out.addedMACs,
                                                   changes: changes)
                    current = out.state
                }
                versions[name] = current.version
                if !list.hasMorePatches { break }
            }
            logger.debug("app-state collection synced", metadata: ["collection": "\(name)", "version": "\(current.version)"])
        } catch {
            if (error as? WAClientError)?.code == .notConnected { return }
            // One code family for the event: an iq error or timeout is a failed fetch, anything else a store failure.
            var code = (error as? WAClientError)?.code.rawValue ?? "client.app_state_store_failed"
            if !code.hasPrefix("client.app_state_") { code = WAClientError.Code.appStateFetchFailed.rawValue }
            failures.append((name, code))
            if failures.count > Self.maxFailures { failures.removeFirst() }
            logger.warning("app-state sync failed", metadata: ["collection": "\(name)", "error": "\(code)"])
            await client.emit(.appStateSyncFailed(collection: name, version: current.version, code: code))
        }
    }

    /// A media transfer for one download (not kept: it holds the client, which holds this state).
    private func media(_ client: WAClient) -> MediaTransfer {
        var configuration = MediaTransfer.Configuration()
        configuration.scheme = client.configuration.mediaScheme
        configuration.maxDownloadBytes = limits.maxExternalBytes
        return MediaTransfer(client: client, configuration: configuration)
    }

    /// Downloads `reference` and parses it as `T`; every failure is `appStateExternalFailed` (the
    /// media code is kept as the message, which carries no bytes).
    private func downloadExternal<T: SwiftProtobuf.Message>(_ reference: WAServerSync_ExternalBlobReference, as: T.Type,
                                                            what: String, client: WAClient) async throws -> T {
        let plaintext: Data
        do { plaintext = try await media(client).downloadAppState(reference, limit: limits.maxExternalBytes) } catch {
            if (error as? WAClientError)?.code == .notConnected { throw error }
            throw WAClientError(.appStateExternalFailed, "\(what) blob: \((error as? WAClientError)?.code.rawValue ?? "\(type(of: error))")")
        }
        do { return try T(serializedBytes: plaintext) } catch {
            throw WAClientError(.appStateExternalFailed, "\(what) blob is not a protobuf")
        }
    }

    private func downloadSnapshot(_ reference: WAServerSync_ExternalBlobReference, client: WAClient) async throws -> WAServerSync_SyncdSnapshot {
        try await downloadExternal(reference, as: WAServerSync_SyncdSnapshot.self, what: "snapshot", client: client)
    }

    /// Patches whose mutations are an external blob (large patches), with the mutations downloaded in place.
    private func resolvingExternal(_ patches: [WAServerSync_SyncdPatch], client: WAClient) async throws -> [WAServerSync_SyncdPatch] {
        var out = patches
        for i in out.indices where out[i].hasExternalMutations {
            let external = try await downloadExternal(out[i].externalMutations, as: WAServerSync_SyncdMutations.self,
                                                      what: "mutations", client: client)
            guard external.mutations.count <= limits.maxMutationsPerPatch else {
                throw WAClientError(.appStateMalformed, "patch v\(out[i].version.version) has too many external mutations")
            }
            out[i].mutations = external.mutations
            externalPatches += 1
        }
        return out
    }

    /// What the verified mutations change; the NCT salt goes to the privacy-token store at once.
    private func apply(_ mutations: [AppStateMutation]) async throws -> [AppStateChange] {
        var changes: [AppStateChange] = []
        var mappings: [LIDMapping] = []
        defer { lidMappingsLearned += mappings.count }
        for mutation in mutations {
            let set = mutation.operation == .set
            let value = mutation.value
            let jid = mutation.index.count > 1 ? try? JID(parsing: mutation.index[1]) : nil
            switch mutation.index[0] {
            case "contact":
                guard let jid else { continue }
                if set, value.hasContactAction {
                    changes.append(.contact(AppStateContact(jid: jid, fullName: value.contactAction.fullName,
                                                            firstName: value.contactAction.firstName)))
                    // Since the LID migration the phone names each contact's other address: a
                    // contact indexed by number carries its LID, one indexed by LID its number
                    // (as Baileys' processContactAction; whatsmeow keeps only the names).
                    let action = value.contactAction
                    let other = action.hasLidJid ? action.lidJid : action.hasPnJid ? action.pnJid : nil
                    if let other, let mapping = Self.mapping(jid, other) { mappings.append(mapping) }
                } else if !set { changes.append(.contactRemoved(jid)) }
            case "pnForLidChat":
                // A LID chat and the number behind it (whatsmeow IndexPNForLIDChat).
                if set, let jid, value.hasPnForLidChatAction, let mapping = Self.mapping(jid, value.pnForLidChatAction.pnJid) {
                    mappings.append(mapping)
                }
            case "setting_pushName" where set && value.hasPushNameSetting:
                changes.append(.pushName(value.pushNameSetting.name))
            case "mute":
                guard let jid else { continue }
                let until: Date? = set && value.muteAction.muted
                    ? (value.muteAction.muteEndTimestamp <= 0 ? .distantFuture
                        : Date(timeIntervalSince1970: TimeInterval(value.muteAction.muteEndTimestamp) / 1000)) : nil
                changes.append(.mute(jid, until: until))
            case "pin_v1":
                if let jid { changes.append(.pin(jid, set && value.pinAction.pinned)) }
            case "archive":
                if let jid { changes.append(.archive(jid, set && value.archiveChatAction.archived)) }
            case "nct_salt_sync":
                // A removal clears the salt (cstoken then waits for a new one).
                try await store.storeNCTSalt(set && value.hasNctSaltSyncAction ? value.nctSaltSyncAction.salt : nil)
            default: continue
            }
        }
        // Stored with the rest of the patch's effects: the next send to the number goes to the LID.
        if !mappings.isEmpty { try await store.storeLIDMappings(mappings) }
        return changes
    }

    /// A PN↔LID pair from an app-state index and a JID text; nil unless one is a LID and the
    /// other a number (anything else is ignored, never guessed).
    static func mapping(_ indexed: JID, _ otherText: String) -> LIDMapping? {
        guard !otherText.isEmpty, let other = try? JID(parsing: otherText) else { return nil }
        return try? LIDMapping(indexed, other)
    }

    /// Asks our phone for keys it has not shared (whatsmeow requestAppStateKeys); each id once.
    private func requestKeys(_ ids: [Data], client: WAClient) async {
        let fresh = ids.filter { !requestedKeys.contains($0) }
        guard !fresh.isEmpty, let messaging = await client.messaging else { return }
        var message = WAE2E_Message()
        message.protocolMessage.type = .appStateSyncKeyRequest
        message.protocolMessage.appStateSyncKeyRequest.keyIds = fresh.map { id in
            var keyID = WAE2E_AppStateSyncKeyId()
            keyID.keyID = id
            return keyID
        }
        do {
            try await messaging.sendPeerMessage(message, client: client)
            requestedKeys.formUnion(fresh)
            keyRequestsSent += 1
        } catch {
            logger.warning("app-state key request not sent", metadata: ["error": "\((error as? WAClientError)?.description ?? "\(type(of: error))")"])
        }
    }
}
