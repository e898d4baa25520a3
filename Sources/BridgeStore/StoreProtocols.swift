import Foundation
import WABinary
import WAClient
import WASignal

// The store's three faces, one per kind of data, so the bridge runs on either backend
// (SQLite files under the data folder, or one PostgreSQL database) without knowing which.

/// The device slots and the registry's outbox (events that outlive a device).
/// Creation and deletion go through `BridgeStore`, which also owns the device's folder.
public protocol RegistryStoring: Sendable {
    func device(_ id: DeviceID) async throws(StoreError) -> RegisteredDevice
    /// Every slot, in creation order.
    func listDevices() async throws(StoreError) -> [RegisteredDevice]
    func deviceCount() async throws(StoreError) -> Int
    /// Records a state transition.
    @discardableResult
    func updateState(_ id: DeviceID, to state: DeviceState, now: Date) async throws(StoreError) -> RegisteredDevice
    /// Records who the device is after login (or clears it with nils after logout); a nil push name keeps the old one.
    @discardableResult
    func setIdentity(_ id: DeviceID, jid: String?, lid: String?, pushName: String?, now: Date) async throws(StoreError) -> RegisteredDevice
    /// Replaces the settings (a JSON object; `store.invalid_settings` otherwise).
    @discardableResult
    func updateSettings(_ id: DeviceID, _ settings: String, now: Date) async throws(StoreError) -> RegisteredDevice

    /// Appends events in order, in one transaction (durable when it returns); an event id already there is skipped.
    func appendEvents(_ events: [RegistryOutboxEvent]) async throws(StoreError)
    /// The oldest `limit` events, in append order.
    func peekEvents(limit: Int) async throws(StoreError) -> [RegistryOutboxEvent]
    /// Removes confirmed events; returns how many went.
    @discardableResult
    func deleteEvents(sequences: [Int64]) async throws(StoreError) -> Int
    /// Events of `deviceID` still waiting here (its own outbox waits behind them).
    func pendingEventCount(deviceID: DeviceID) async throws(StoreError) -> Int
    func outboxCount() async throws(StoreError) -> Int
}

extension RegistryStoring {
    @discardableResult
    public func updateState(_ id: DeviceID, to state: DeviceState) async throws(StoreError) -> RegisteredDevice {
        try await updateState(id, to: state, now: Date())
    }

    @discardableResult
    public func setIdentity(_ id: DeviceID, jid: String?, lid: String?, pushName: String?) async throws(StoreError) -> RegisteredDevice {
        try await setIdentity(id, jid: jid, lid: lid, pushName: pushName, now: Date())
    }

    @discardableResult
    public func updateSettings(_ id: DeviceID, _ settings: String) async throws(StoreError) -> RegisteredDevice {
        try await updateSettings(id, settings, now: Date())
    }

    public func peekEvents() async throws(StoreError) -> [RegistryOutboxEvent] { try await peekEvents(limit: 100) }
}

/// What a backend's registry does beyond `RegistryStoring`: slot creation and removal,
/// which only `BridgeStore` calls (it creates and removes the device's folder around them).
protocol RegistryBackend: RegistryStoring {
    /// `lease`: the creating worker holds the new device from the first instant (generation 1),
    /// in the same transaction as the row, so no other worker's round takes it before its login.
    func createDevice(_ id: DeviceID, settings: String, lease: (owner: String, ttl: TimeInterval)?,
                      now: Date) async throws(StoreError) -> RegisteredDevice
    func deleteDevice(_ id: DeviceID) async throws(StoreError)
}

/// Every key a device keeps: the client's `DeviceStore` and the Signal stores, LID mappings,
/// privacy tokens, app state and pending plaintexts. Key material is sealed with the device's
/// `KeyCipher` in both backends. A handle opened with a fence generation refuses every write
/// with `store.fenced` once a newer generation raised the device's fence.
public protocol DeviceKeyStore: DeviceStore, SignalProtocolStore, SignalStoreProvider, LIDMappingStore, PrivacyTokenStore,
    AppStateStore, SignalAddressMigrating, PendingPlaintextStore, Sendable {
    var deviceID: DeviceID { get }
    /// The owner generation this handle writes with (nil: unfenced).
    var generation: Int64? { get }
    /// The caller's answer to an `IdentityChange`: trust the new key from now on.
    func acceptIdentity(_ change: IdentityChange) async throws
    /// Stores many prekeys in one transaction (an upload batch).
    func storePreKeys(_ records: [PreKeyRecord]) async throws
    /// How many one-time prekeys are left.
    func preKeyCount() async throws -> Int
    /// The highest prekey id stored, or nil.
    func maxPreKeyID() async throws -> UInt32?
    /// Whether any session exists with `address`.
    func hasSession(for address: SignalAddress) async throws -> Bool
    /// How many PN↔LID mappings are stored.
    func lidMappingCount() async throws -> Int
    /// How many pending plaintexts are kept.
    func pendingPlaintextCount() async throws -> Int
}

/// One device's history, event outbox and idempotency records.
public protocol DeviceDataStoring: Sendable {
    var deviceID: DeviceID { get }

    /// Inserts or replaces a message (same chat and id).
    func saveMessage(_ message: HistoryMessage) async throws(StoreError)
    /// Sets a message's status; false when there is no such message.
    @discardableResult
    func updateMessageStatus(chat: String, id: String, status: String) async throws(StoreError) -> Bool
    func message(chat: String, id: String) async throws(StoreError) -> HistoryMessage?
    /// The newest `limit` messages of a chat, oldest first.
    func messages(chat: String, limit: Int) async throws(StoreError) -> [HistoryMessage]

    /// One history-sync chunk in one transaction (see `DeviceDataStore.saveHistorySync`).
    func saveHistorySync(
        conversations: [HistoryConversationRecord], messages: [HistoryMessage], pushNames: [PushNameRecord],
        bounds: HistoryBounds, now: Date
    ) async throws(StoreError) -> HistorySyncStored
    /// The conversations history sync named, the most recent first.
    func conversations(limit: Int) async throws(StoreError) -> [HistoryConversationRecord]
    func pushName(for jid: String) async throws(StoreError) -> String?
    func historicalMessageCount() async throws(StoreError) -> Int

    /// Appends an event (an id already in the outbox returns that row; one already published is not appended).
    @discardableResult
    func appendEvent(eventID: String, routingKey: String, payload: Data, now: Date) async throws(StoreError) -> OutboxEvent
    /// `appendEvent` for several events, in order, in one transaction.
    @discardableResult
    func appendEvents(_ events: [NewOutboxEvent]) async throws(StoreError) -> [OutboxEvent]
    /// Whether the broker confirmed `eventID` (among the newest `DeviceDataStore.publishedIDsKept`).
    func isPublished(eventID: String) async throws(StoreError) -> Bool
    /// The oldest `limit` events, in append order.
    func peekEvents(limit: Int) async throws(StoreError) -> [OutboxEvent]
    /// Removes confirmed events and remembers their ids as published, in one transaction.
    @discardableResult
    func deleteEvents(sequences: [Int64], now: Date) async throws(StoreError) -> Int
    func outboxCount() async throws(StoreError) -> Int

    /// Records a command's result unless one is already recorded; returns the stored one and whether this call inserted it.
    func recordCommandResult(
        commandID: String, messageID: String?, result: String, correlationID: String?, now: Date
    ) async throws(StoreError) -> (record: IdempotencyRecord, inserted: Bool)
    /// `recordCommandResult` for several commands, in one transaction.
    func recordCommandResults(_ records: [IdempotencyRecord]) async throws(StoreError) -> [(record: IdempotencyRecord, inserted: Bool)]
    /// The command that sent WhatsApp message `messageID`, if one did.
    func command(forMessageID messageID: String) async throws(StoreError) -> IdempotencyRecord?
    /// The recorded results of several commands, by command id.
    func commandResults(_ commandIDs: [String]) async throws(StoreError) -> [String: IdempotencyRecord]
}

extension DeviceDataStoring {
    public func messages(chat: String) async throws(StoreError) -> [HistoryMessage] { try await messages(chat: chat, limit: 50) }

    public func saveHistorySync(
        conversations: [HistoryConversationRecord], messages: [HistoryMessage], pushNames: [PushNameRecord], bounds: HistoryBounds
    ) async throws(StoreError) -> HistorySyncStored {
        try await saveHistorySync(conversations: conversations, messages: messages, pushNames: pushNames, bounds: bounds, now: Date())
    }

    public func conversations() async throws(StoreError) -> [HistoryConversationRecord] { try await conversations(limit: 100) }

    @discardableResult
    public func appendEvent(eventID: String, routingKey: String, payload: Data) async throws(StoreError) -> OutboxEvent {
        try await appendEvent(eventID: eventID, routingKey: routingKey, payload: payload, now: Date())
    }

    public func peekEvents() async throws(StoreError) -> [OutboxEvent] { try await peekEvents(limit: 100) }

    @discardableResult
    public func deleteEvents(sequences: [Int64]) async throws(StoreError) -> Int { try await deleteEvents(sequences: sequences, now: Date()) }

    public func recordCommandResult(
        commandID: String, messageID: String?, result: String, correlationID: String? = nil
    ) async throws(StoreError) -> (record: IdempotencyRecord, inserted: Bool) {
        try await recordCommandResult(commandID: commandID, messageID: messageID, result: result, correlationID: correlationID, now: Date())
    }

    /// The recorded result of a command, or nil when it never completed.
    public func commandResult(_ commandID: String) async throws(StoreError) -> IdempotencyRecord? {
        try await commandResults([commandID])[commandID]
    }
}

extension SQLiteSessionStore: DeviceKeyStore {}
extension DeviceDataStore: DeviceDataStoring {}
