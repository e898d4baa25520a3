import Foundation
import WABinary

/// An app-state sync key the phone shared (whatsmeow `store.AppStateSyncKey`): secret at rest.
public struct AppStateSyncKey: Sendable, Equatable {
    public var id: Data
    public var data: Data
    public var fingerprint: Data
    public var timestamp: Int64
    public init(id: Data, data: Data, fingerprint: Data = Data(), timestamp: Int64 = 0) {
        self.id = id
        self.data = data
        self.fingerprint = fingerprint
        self.timestamp = timestamp
    }
}

/// A contact as the phone's address book names it (`contactAction`).
public struct AppStateContact: Sendable, Equatable {
    public var jid: JID
    public var fullName: String
    public var firstName: String
    public init(jid: JID, fullName: String, firstName: String) {
        self.jid = jid.nonAD
        self.fullName = fullName
        self.firstName = firstName
    }
}

/// Per-chat settings from app state (mute / pin / archive).
public struct AppStateChatSettings: Sendable, Equatable {
    public var jid: JID
    /// Muted until (nil: not muted; `.distantFuture`: muted for ever).
    public var mutedUntil: Date?
    public var pinned: Bool
    public var archived: Bool
    public init(jid: JID, mutedUntil: Date? = nil, pinned: Bool = false, archived: Bool = false) {
        self.jid = jid.nonAD
        self.mutedUntil = mutedUntil
        self.pinned = pinned
        self.archived = archived
    }
}

/// What one applied mutation changes in the stored view of the account.
public enum AppStateChange: Sendable, Equatable {
    case contact(AppStateContact)
    case contactRemoved(JID)
    case mute(JID, until: Date?)
    case pin(JID, Bool)
    case archive(JID, Bool)
    case pushName(String)
}

/// A mutation's index MAC and value MAC (kept to take a value out of the LTHash when replaced).
public struct AppStateMutationMAC: Sendable, Equatable {
    public var indexMAC: Data
    public var valueMAC: Data
    public init(indexMAC: Data, valueMAC: Data) {
        self.indexMAC = indexMAC
        self.valueMAC = valueMAC
    }
}

/// App-state sync keys, per-collection version and hash state, value MACs, and the applied view
/// (whatsmeow `AppStateSyncKeyStore`, `AppStateStore`, `ContactStore`). Keys are sealed at rest.
public protocol AppStateStore: Sendable {
    func storeAppStateSyncKeys(_ keys: [AppStateSyncKey]) async throws
    func appStateSyncKey(id: Data) async throws -> AppStateSyncKey?
    /// The collection's state (version 0 and a zero hash when never synced).
    func appStateVersion(_ collection: String) async throws -> AppStateHashState
    func appStateValueMAC(_ collection: String, indexMAC: Data) async throws -> Data?
    /// One atomic step: the new state, MACs removed then added, and the applied changes.
    func commitAppState(_ collection: String, state: AppStateHashState, removed: [Data], added: [AppStateMutationMAC],
                        changes: [AppStateChange]) async throws
    func appStateContact(_ jid: JID) async throws -> AppStateContact?
    func appStateContacts() async throws -> [AppStateContact]
    func appStateChatSettings(_ jid: JID) async throws -> AppStateChatSettings?
    func appStateOwnPushName() async throws -> String?
}

/// An `AppStateStore` in memory (the in-memory device store's).
public actor InMemoryAppStateStore: AppStateStore {
    private var keys: [Data: AppStateSyncKey] = [:]
    private var states: [String: AppStateHashState] = [:]
    private var macs: [String: [Data: Data]] = [:]
    private var contacts: [JID: AppStateContact] = [:]
    private var chats: [JID: AppStateChatSettings] = [:]
    private var pushName: String?

    public init() {}

    public func storeAppStateSyncKeys(_ new: [AppStateSyncKey]) { for key in new { keys[key.id] = key } }
    public func appStateSyncKey(id: Data) -> AppStateSyncKey? { keys[id] }
    public func appStateVersion(_ collection: String) -> AppStateHashState { states[collection] ?? AppStateHashState() }
    public func appStateValueMAC(_ collection: String, indexMAC: Data) -> Data? { macs[collection]?[indexMAC] }

    public func commitAppState(_ collection: String, state: AppStateHashState, removed: [Data], added: [AppStateMutationMAC],
                               changes: [AppStateChange]) {
        states[collection] = state
        for mac in removed { macs[collection]?[mac] = nil }
        for mac in added { macs[collection, default: [:]][mac.indexMAC] = mac.valueMAC }
        for change in changes { apply(change) }
    }

    private func apply(_ change: AppStateChange) {
        switch change {
        case .contact(let contact): contacts[contact.jid] = contact
        case .contactRemoved(let jid): contacts[jid.nonAD] = nil
        case .mute(let jid, let until): chats[jid.nonAD, default: AppStateChatSettings(jid: jid)].mutedUntil = until
        case .pin(let jid, let on): chats[jid.nonAD, default: AppStateChatSettings(jid: jid)].pinned = on
        case .archive(let jid, let on): chats[jid.nonAD, default: AppStateChatSettings(jid: jid)].archived = on
        case .pushName(let name): pushName = name
        }
    }

    public func appStateContact(_ jid: JID) -> AppStateContact? { contacts[jid.nonAD] }
    public func appStateContacts() -> [AppStateContact] { contacts.values.sorted { $0.jid.description < $1.jid.description } }
    public func appStateChatSettings(_ jid: JID) -> AppStateChatSettings? { chats[jid.nonAD] }
    public func appStateOwnPushName() -> String? { pushName }
}
