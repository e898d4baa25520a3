import Foundation
import WABinary
import WAClient
import WACrypto
import WAProto

/// What a simulated phone keeps of its app state: its sync keys (the same for every companion,
/// as a real phone shares its current keys) and, per collection, what it needs to build the next
/// patch (version, LTHash, value MACs).
struct SimPhoneAppState: Sendable {
    var keys: [WAE2E_AppStateSyncKey]
    var builders: [String: AppStatePatchBuilder] = [:]
    /// Per collection, the records it holds by index MAC (what a snapshot carries).
    var records: [String: [Data: WAServerSync_SyncdRecord]] = [:]
    var uploaded = false
    /// The key the patches are sealed with (the first one).
    var active: WAE2E_AppStateSyncKey { keys[0] }
}

/// One change the phone makes to its app state (tests drive these).
public enum SimAppStateChange: Sendable {
    /// `lid`: the contact's LID, named in the entry as today's phones do.
    case contact(JID, fullName: String, firstName: String, lid: JID? = nil)
    /// A LID chat and the number behind it (`pnForLidChat`).
    case pnForLidChat(lid: JID, pn: JID)
    case removeContact(JID)
    case pushName(String)
    case mute(JID, until: Date?)
    case pin(JID, Bool)
    case archive(JID, Bool)
    case nctSalt(Data?)
}

/// A real phone holds the account's app state and uploads it as encrypted patches
/// (whatsmeow appstate/encode.go from the phone's side); the server keeps them opaque.
extension WASim {
    static let appStateKeyCount = 3

    /// The phone's app-state sync keys (made once per phone).
    func phoneAppState(_ number: String) -> SimPhoneAppState {
        if let state = phoneAppStates[number] { return state }
        let now = Int64(Date().timeIntervalSince1970)
        let keys = (0..<Self.appStateKeyCount).map { index in
            var key = WAE2E_AppStateSyncKey()
            key.keyID.keyID = Symmetric.randomBytes(6)
            key.keyData.keyData = Symmetric.randomBytes(32)
            key.keyData.fingerprint.rawID = UInt32.random(in: 1...UInt32.max)
            key.keyData.fingerprint.currentIndex = UInt32(index)
            key.keyData.fingerprint.deviceIndexes = [0]
            key.keyData.timestamp = now * 1000
            return key
        }
        let state = SimPhoneAppState(keys: keys)
        phoneAppStates[number] = state
        return state
    }

    /// The keys the phone shares with a device it just linked.
    func appStateKeysToShare(_ number: String) -> [WAE2E_AppStateSyncKey] {
        let keys = phoneAppState(number).keys
        return configuration.phoneWithholdsAppStateKey ? Array(keys.dropFirst()) : keys
    }

    /// The phone's first upload (once per phone): contacts (the other simulated accounts), our
    /// push name, a mute, a pin, an archive and the NCT salt. `excluding` is the device being
    /// linked: it syncs after the key share, not on this upload's notification.
    func uploadInitialAppState(phone number: String, excluding device: JID) async {
        guard let phone = phones[number], !phoneAppState(number).uploaded else { return }
        phoneAppStates[number]?.uploaded = true
        let others = phones.values.filter { $0.number != number }.sorted { $0.number < $1.number }
        var contacts: [SimAppStateChange] = others.map {
            .contact($0.jid, fullName: "\($0.pushName) Contact", firstName: $0.pushName, lid: JID(user: $0.lidUser, server: JID.lidServer))
        }
        if contacts.isEmpty { contacts = [.contact(JID(user: "15550000001", server: JID.userServer), fullName: "Sim Contact", firstName: "Sim")] }
        let chat = others.first?.jid ?? JID(user: "15550000001", server: JID.userServer)
        do {
            try await changeAppState(phone: number, collection: "critical_unblock_low", contacts, excluding: device)
            try await changeAppState(phone: number, collection: "critical_block", [.pushName(phone.pushName)], excluding: device)
            try await changeAppState(phone: number, collection: "regular_high",
                                     [.mute(chat, until: nil), .nctSalt(nctSalt(for: number))], excluding: device)
            try await changeAppState(phone: number, collection: "regular_low", [.pin(chat, true), .archive(chat, true)],
                                     excluding: device)
        } catch {
            logger.warning("phone could not upload its app state", metadata: ["error": "\(type(of: error))"])
        }
    }

    /// The phone changes its app state: one patch in `collection`, uploaded to the server, which
    /// tells the linked devices (`server_sync`). `corruptMAC` flips a bit of the patch MAC (fault
    /// injection: companions must refuse the patch).
    public func changeAppState(phone number: String, collection: String, _ changes: [SimAppStateChange],
                               corruptMAC: Bool = false, excluding device: JID? = nil) async throws {
        let state = phoneAppState(number)
        var builder = state.builders[collection] ?? AppStatePatchBuilder(collection: collection)
        let mutations = changes.map(Self.mutation)
        var patch = try builder.patch(mutations, keyID: state.active.keyID.keyID, syncKey: state.active.keyData.keyData)
        if corruptMAC, !patch.patchMac.isEmpty { patch.patchMac[patch.patchMac.startIndex] ^= 0x01 }
        phoneAppStates[number]?.builders[collection] = builder
        var records = state.records[collection] ?? [:]
        for mutation in patch.mutations {
            records[mutation.record.index.blob] = mutation.operation == .set ? mutation.record : nil
        }
        phoneAppStates[number]?.records[collection] = records
        if try SyncdMutationsSize.of(patch) > configuration.appStateExternalMutationsThreshold {
            var external = WAServerSync_SyncdMutations()
            external.mutations = patch.mutations
            patch.externalMutations = try await uploadAppStateBlob(try external.serializedBytes())
            patch.mutations = []
        }
        let snapshot = try await uploadSnapshot(collection: collection, builder: builder, records: records, key: state.active)
        let bytes: Data = try patch.serializedBytes()
        do {
            try await storeAppStatePatch(bytes, collection: collection, account: number, snapshot: snapshot, excluding: device)
        } catch {
            throw SimError("sim.app_state_refused", error.reason)
        }
    }

    /// The collection's snapshot at the builder's version (whatsmeow SyncdSnapshot from the phone's
    /// side: every record, the MAC of the LTHash, the key id), encrypted and put on the media host.
    private func uploadSnapshot(collection: String, builder: AppStatePatchBuilder, records: [Data: WAServerSync_SyncdRecord],
                                key: WAE2E_AppStateSyncKey) async throws -> Data {
        var snapshot = WAServerSync_SyncdSnapshot()
        snapshot.version.version = builder.state.version
        snapshot.records = records.keys.sorted { $0.lexicographicallyPrecedes($1) }.compactMap { records[$0] }
        snapshot.keyID.id = key.keyID.keyID
        snapshot.mac = AppStateMAC.snapshotMAC(builder.state, collection: collection,
                                               key: AppStateMutationKeys(syncKey: key.keyData.keyData).snapshotMAC)
        if configuration.corruptAppStateSnapshots { snapshot.mac[snapshot.mac.startIndex] ^= 0x01 }
        let reference = try await uploadAppStateBlob(try snapshot.serializedBytes())
        return try reference.serializedBytes()
    }

    /// Encrypts `plaintext` with a fresh media key ("WhatsApp App State Keys") and stores it on the
    /// media host as `md-app-state`, as the phone uploads snapshots and large patches.
    func uploadAppStateBlob(_ plaintext: Data) async throws -> WAServerSync_ExternalBlobReference {
        let mediaKey = Symmetric.randomBytes(32)
        let blob = try MediaCipher.encrypt(plaintext, keys: MediaKeys(mediaKey: mediaKey, type: .appState))
        var reference = WAServerSync_ExternalBlobReference()
        reference.mediaKey = mediaKey
        reference.directPath = await media.store(blob, kind: "md-app-state")
        reference.fileSizeBytes = UInt64(plaintext.count)
        reference.fileSha256 = Symmetric.sha256(plaintext)
        reference.fileEncSha256 = Symmetric.sha256(blob)
        return reference
    }

    static func mutation(_ change: SimAppStateChange) -> AppStatePatchBuilder.Change {
        var value = WASyncAction_SyncActionValue()
        value.timestamp = Int64(Date().timeIntervalSince1970 * 1000)
        switch change {
        case .contact(let jid, let full, let first, let lid):
            value.contactAction.fullName = full
            value.contactAction.firstName = first
            value.contactAction.saveOnPrimaryAddressbook = true
            if let lid { value.contactAction.lidJid = lid.nonAD.description }
            return .init(index: ["contact", jid.nonAD.description], value: value, version: 2)
        case .pnForLidChat(let lid, let pn):
            value.pnForLidChatAction.pnJid = pn.nonAD.description
            return .init(index: ["pnForLidChat", lid.nonAD.description], value: value, version: 1)
        case .removeContact(let jid):
            return .init(operation: .remove, index: ["contact", jid.nonAD.description], value: value, version: 2)
        case .pushName(let name):
            value.pushNameSetting.name = name
            return .init(index: ["setting_pushName"], value: value, version: 1)
        case .mute(let jid, let until):
            value.muteAction.muted = true
            value.muteAction.muteEndTimestamp = until.map { Int64($0.timeIntervalSince1970 * 1000) } ?? -1
            return .init(index: ["mute", jid.nonAD.description], value: value, version: 2)
        case .pin(let jid, let on):
            value.pinAction.pinned = on
            return .init(index: ["pin_v1", jid.nonAD.description], value: value, version: 5)
        case .archive(let jid, let on):
            value.archiveChatAction.archived = on
            return .init(index: ["archive", jid.nonAD.description], value: value, version: 3)
        case .nctSalt(let salt?):
            value.nctSaltSyncAction.salt = salt
            return .init(index: ["nct_salt_sync"], value: value, version: 1)
        case .nctSalt(nil):
            return .init(operation: .remove, index: ["nct_salt_sync"], value: value, version: 1)
        }
    }
}

/// How big a patch's mutations are once serialized (what decides inline or external).
enum SyncdMutationsSize {
    static func of(_ patch: WAServerSync_SyncdPatch) throws -> Int {
        var mutations = WAServerSync_SyncdMutations()
        mutations.mutations = patch.mutations
        let bytes: Data = try mutations.serializedBytes()
        return bytes.count
    }
}

extension WASim {
    /// A companion asked for app-state keys: the phone shares those it has among the asked ids
    /// (whatsmeow handleAppStateSyncKeyRequest, from the phone's side), to that device alone.
    func answerKeyRequest(_ request: (device: JID, ids: [Data]), phone number: String) async {
        guard let phone = phones[number], let agent = agents[number], request.device.user == number, request.device.device != 0,
              devices[request.device] != nil else { return }
        let asked = Set(request.ids.prefix(64))
        let keys = phoneAppState(number).keys.filter { asked.contains($0.keyID.keyID) }
        guard !keys.isEmpty else { return }
        keyRequestsAnswered += 1
        var message = WAE2E_Message()
        message.protocolMessage.type = .appStateSyncKeyShare
        message.protocolMessage.appStateSyncKeyShare.keys = keys
        do {
            let id = MessageID.random(ownJID: phone.jid)
            let node = try await agent.peerMessage(id: id, to: request.device, message: message, bundles: [:])
            await routePeerMessage(node, from: phone.jid, pushPriority: "high")
        } catch {
            logger.warning("phone could not answer a key request", metadata: ["error": "\(type(of: error))"])
        }
    }

    /// How many app-state key requests the phones answered (tests).
    public var appStateKeyRequestsAnswered: Int { keyRequestsAnswered }
}
