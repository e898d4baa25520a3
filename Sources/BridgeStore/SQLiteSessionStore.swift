import Foundation
import GRDB
import SwiftProtobuf
import WABinary
import WAClient
import WACrypto
import WAProto
import WASignal

/// One device's `session.sqlite`: the SQLite implementation of the client's
/// `DeviceStore` and of WASignal's `SignalProtocolStore`. Private keys,
/// session and sender-key records and the adv secret are sealed with the
/// device's key when a master key is configured.
///
/// Reads and writes go through the store's database cache, so the file may
/// be closed while idle and reopened on the next call. `commit` writes one
/// Signal operation's changes in one SQLite transaction.
public final class SQLiteSessionStore: DeviceStore, SignalProtocolStore, Sendable {
    public let deviceID: DeviceID
    private let cache: DatabaseCache
    let cipher: KeyCipher
    /// The owner generation this handle writes with; nil writes unfenced (tools, tests, one worker
    /// without leases).
    public let generation: Int64?

    init(deviceID: DeviceID, cache: DatabaseCache, cipher: KeyCipher, generation: Int64? = nil) {
        self.deviceID = deviceID
        self.cache = cache
        self.cipher = cipher
        self.generation = generation
    }

    func queue() throws(StoreError) -> DatabaseQueue {
        try cache.database(for: .init(device: deviceID, kind: .session)).queue
    }

    // Run by the calling task, without a hop to the database queue's thread: see `DeviceDataStore`.
    func read<T: Sendable>(_ what: String, _ body: @escaping @Sendable (Database) throws -> T) async throws(StoreError) -> T {
        let queue = try queue()
        return try await StoreError.wrapping(what) { try queue.read(body) }
    }

    /// Every key write checks the fence inside its own transaction: SQLite serialises writers
    /// of the file, so a `raiseFence` either commits before the check (the write is refused) or
    /// after the whole write.
    func write<T: Sendable>(_ what: String, _ body: @escaping @Sendable (Database) throws -> T) async throws(StoreError) -> T {
        let queue = try queue()
        let generation = self.generation, device = deviceID
        return try await StoreError.wrapping(what) {
            try queue.write { db in
                if let generation {
                    let fence = try Int64.fetchOne(db.cachedStatement(sql: "SELECT generation FROM fence WHERE id = 1")) ?? 0
                    if fence > generation {
                        throw StoreError(.fenced, "\(what) refused: device \(device) is owned by generation \(fence), this writer is \(generation)")
                    }
                }
                return try body(db)
            }
        }
    }

    /// Sets the fence to `generation` unless it is already higher (`BridgeStore.raiseFence`).
    func raiseFence(to generation: Int64) async throws(StoreError) {
        let queue = try queue()
        try await StoreError.wrapping("raiseFence") {
            try queue.write { db in
                try db.execute(sql: "UPDATE fence SET generation = MAX(generation, ?) WHERE id = 1", arguments: [generation])
            }
        }
    }

    /// The device's fence now.
    func fence() async throws(StoreError) -> Int64 {
        try await read("fence") { db in try Int64.fetchOne(db, sql: "SELECT generation FROM fence WHERE id = 1") ?? 0 }
    }

    // MARK: DeviceStore

    public func loadDevice() async throws -> DeviceRecord? {
        let cipher = self.cipher
        return try await read("loadDevice") { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM account WHERE id = 1") else { return nil }
            return try Self.deviceRecord(from: row, cipher: cipher)
        }
    }

    public func saveDevice(_ record: DeviceRecord) async throws {
        let cipher = self.cipher
        let account: Data?
        do { account = try record.account?.serializedData() } catch {
            throw StoreError(.corrupt, "account identity does not serialize")
        }
        let noise = try cipher.seal(record.noiseKey.privateKey.rawRepresentation, context: "account.noiseKey")
        let identity = try cipher.seal(record.identityKey.privateKey.rawRepresentation, context: "account.identityKey")
        let signed = try cipher.seal(record.signedPreKey.keyPair.privateKey.rawRepresentation, context: "account.signedPreKey")
        let adv = try cipher.seal(record.advSecret, context: "account.advSecret")
        let registrationID = Int64(record.registrationID)
        let signedID = Int64(record.signedPreKey.id)
        let signature = record.signedPreKey.signature
        let jid = record.jid?.description
        let lid = record.lid?.description
        let (pushName, platform, businessName) = (record.pushName, record.platform, record.businessName)
        try await write("saveDevice") { db in
            let arguments: StatementArguments = [
                noise, identity, registrationID, signedID, signed, signature, adv, account,
                jid, lid, pushName, platform, businessName,
            ]
            try db.execute(sql: """
                INSERT OR REPLACE INTO account(id, noiseKeyBlob, identityKeyBlob, registrationID, signedPreKeyID,
                    signedPreKeyBlob, signedPreKeySignature, advSecretBlob, account, jid, lid, pushName, platform, businessName)
                VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: arguments)
        }
    }

    /// Logout: deletes every key, identity, session and sender key; the slot
    /// (folder, history, outbox) stays. Deleted pages are zeroed
    /// (`secure_delete`) and the WAL is truncated, so no key stays on disk.
    public func wipe() async throws {
        try await write("wipe") { db in
            for table in ["account", "identity", "preKey", "signedPreKey", "session", "senderKey", "pendingPlaintext", "lidMapping", "privacyToken", "nctSalt",
                          "appStateSyncKey", "appStateVersion", "appStateMutationMAC", "appStateContact", "appStateChat", "appStateSetting"] {
                try db.execute(sql: "DELETE FROM \(table)")
            }
        }
        let queue = try queue()
        try await StoreError.wrapping("wipe checkpoint") {
            try await queue.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)")
            }
        }
    }

    static func deviceRecord(from row: Row, cipher: KeyCipher) throws -> DeviceRecord {
        func pair(_ column: String, _ context: String) throws -> Curve25519KeyPair {
            let raw = try cipher.open(row[column], context: context)
            do { return Curve25519KeyPair(privateKey: try Curve25519PrivateKey(rawRepresentation: raw)) } catch {
                throw StoreError(.corrupt, "\(context) is not a Curve25519 key")
            }
        }
        func jid(_ column: String) throws -> JID? {
            guard let text: String = row[column] else { return nil }
            do { return try JID(parsing: text) } catch { throw StoreError(.corrupt, "stored \(column) does not parse") }
        }
        var account: WAAdv_ADVSignedDeviceIdentity?
        if let bytes: Data = row["account"] {
            do { account = try WAAdv_ADVSignedDeviceIdentity(serializedBytes: bytes) } catch {
                throw StoreError(.corrupt, "stored account identity does not parse")
            }
        }
        let signedID: Int64 = row["signedPreKeyID"]
        let registrationID: Int64 = row["registrationID"]
        return DeviceRecord(
            noiseKey: try pair("noiseKeyBlob", "account.noiseKey"),
            identityKey: try pair("identityKeyBlob", "account.identityKey"),
            registrationID: UInt32(truncatingIfNeeded: registrationID),
            signedPreKey: SignedPreKey(
                id: UInt32(truncatingIfNeeded: signedID),
                keyPair: try pair("signedPreKeyBlob", "account.signedPreKey"),
                signature: row["signedPreKeySignature"]),
            advSecret: try cipher.open(row["advSecretBlob"], context: "account.advSecret"),
            account: account, jid: try jid("jid"), lid: try jid("lid"),
            pushName: row["pushName"], platform: row["platform"], businessName: row["businessName"])
    }

    private func requireDevice() async throws -> DeviceRecord {
        guard let record = try await loadDevice() else {
            throw StoreError(.notFound, "device \(deviceID) has no keys (not created yet, or wiped)")
        }
        return record
    }

    // MARK: IdentityKeyStore

    public func identityKeyPair() async throws -> IdentityKeyPair {
        IdentityKeyPair(keyPair: try await requireDevice().identityKey)
    }

    public func localRegistrationID() async throws -> UInt32 {
        try await requireDevice().registrationID
    }

    public func identity(for address: SignalAddress) async throws -> Curve25519PublicKey? {
        let key = address.description
        let bytes = try await read("identity") { db in
            try Data.fetchOne(db, sql: "SELECT publicKey FROM identity WHERE address = ?", arguments: [key])
        }
        guard let bytes else { return nil }
        do { return try Curve25519PublicKey(rawRepresentation: bytes) } catch {
            throw StoreError(.corrupt, "stored identity for \(address) is not a public key")
        }
    }

    public func isTrustedIdentity(_ key: Curve25519PublicKey, for address: SignalAddress, direction: IdentityDirection) async throws -> Bool {
        guard let known = try await identity(for: address) else { return true }
        return known == key
    }

    @discardableResult
    public func saveIdentity(_ key: Curve25519PublicKey, for address: SignalAddress) async throws -> Bool {
        let name = address.description
        let raw = key.rawRepresentation
        return try await write("saveIdentity") { db in
            let old = try Data.fetchOne(db, sql: "SELECT publicKey FROM identity WHERE address = ?", arguments: [name])
            try db.execute(sql: "INSERT OR REPLACE INTO identity(address, publicKey) VALUES (?, ?)", arguments: [name, raw])
            return old != nil && old != raw
        }
    }

    /// The caller's answer to an `IdentityChange`: trust the new key from now on.
    public func acceptIdentity(_ change: IdentityChange) async throws {
        guard let key = change.newKey else { return }
        try await saveIdentity(key, for: change.address)
    }

    // MARK: PreKeyStore

    public func loadPreKey(id: UInt32) async throws -> PreKeyRecord? {
        let cipher = self.cipher
        return try await read("loadPreKey") { db in
            guard let blob = try Data.fetchOne(db, sql: "SELECT recordBlob FROM preKey WHERE id = ?", arguments: [Int64(id)]) else { return nil }
            return try Self.parse("prekey \(id)") { try PreKeyRecord(serialized: try cipher.open(blob, context: "preKey.\(id)")) }
        }
    }

    public func storePreKey(_ record: PreKeyRecord) async throws {
        try await storePreKeys([record])
    }

    /// Stores many prekeys in one transaction (an upload batch).
    public func storePreKeys(_ records: [PreKeyRecord]) async throws {
        let rows = try records.map { (Int64($0.id), try cipher.seal($0.serialized(), context: "preKey.\($0.id)")) }
        try await write("storePreKeys") { db in
            for (id, blob) in rows {
                try db.execute(sql: "INSERT OR REPLACE INTO preKey(id, recordBlob) VALUES (?, ?)", arguments: [id, blob])
            }
        }
    }

    public func removePreKey(id: UInt32) async throws {
        try await write("removePreKey") { db in
            try db.execute(sql: "DELETE FROM preKey WHERE id = ?", arguments: [Int64(id)])
        }
    }

    /// How many one-time prekeys are left (the client uploads more when low).
    public func preKeyCount() async throws -> Int {
        try await read("preKeyCount") { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM preKey") ?? 0 }
    }

    /// The highest prekey id stored, or nil (the client numbers new ones after it).
    public func maxPreKeyID() async throws -> UInt32? {
        try await read("maxPreKeyID") { db in
            try Int64.fetchOne(db, sql: "SELECT MAX(id) FROM preKey").map { UInt32(truncatingIfNeeded: $0) }
        }
    }

    /// Reserves `count` one-time prekey ids from the persistent counter, in one
    /// transaction (24-bit ids, 1…2^24-1, wrapping to 1 as whatsmeow does): an id
    /// is never handed out twice before the counter wraps, even after the keys
    /// holding it were consumed and the process restarted. The counter survives
    /// `wipe()`: reusing no number is harmless, and it costs nothing.
    func reservePreKeyIDs(_ count: Int) async throws -> [UInt32] {
        guard count > 0 else { return [] }
        return try await write("reservePreKeyIDs") { db in
            let stored = try Int64.fetchOne(db, sql: "SELECT nextID FROM preKeyCounter WHERE id = 1")
            let start = UInt32(truncatingIfNeeded: stored ?? 1)
            let ids = (0..<UInt32(count)).map { (start &+ $0 &- 1) % 0xFF_FFFF + 1 }
            let next = Int64(ids.last! % 0xFF_FFFF + 1)
            try db.execute(sql: "INSERT OR REPLACE INTO preKeyCounter(id, nextID) VALUES (1, ?)", arguments: [next])
            return ids
        }
    }

    // MARK: SignedPreKeyStore

    /// A stored signed prekey, or the device record's own one when the id matches.
    public func loadSignedPreKey(id: UInt32) async throws -> SignedPreKeyRecord? {
        let cipher = self.cipher
        let stored = try await read("loadSignedPreKey") { db -> SignedPreKeyRecord? in
            guard let blob = try Data.fetchOne(db, sql: "SELECT recordBlob FROM signedPreKey WHERE id = ?", arguments: [Int64(id)]) else { return nil }
            return try Self.parse("signed prekey \(id)") {
                try SignedPreKeyRecord(serialized: try cipher.open(blob, context: "signedPreKey.\(id)"))
            }
        }
        if let stored { return stored }
        guard let device = try await loadDevice(), device.signedPreKey.id == id else { return nil }
        return SignedPreKeyRecord(
            id: id, keyPair: device.signedPreKey.keyPair, signature: device.signedPreKey.signature, timestamp: 0)
    }

    public func storeSignedPreKey(_ record: SignedPreKeyRecord) async throws {
        let blob = try cipher.seal(record.serialized(), context: "signedPreKey.\(record.id)")
        let id = Int64(record.id)
        try await write("storeSignedPreKey") { db in
            try db.execute(sql: "INSERT OR REPLACE INTO signedPreKey(id, recordBlob) VALUES (?, ?)", arguments: [id, blob])
        }
    }

    // MARK: SessionStore

    public func loadSession(for address: SignalAddress) async throws -> SessionRecord? {
        let cipher = self.cipher
        let name = address.description
        return try await read("loadSession") { db in
            guard let blob = try Data.fetchOne(db, sql: "SELECT recordBlob FROM session WHERE address = ?", arguments: [name]) else { return nil }
            return try Self.parse("session \(name)") { try SessionRecord(serialized: try cipher.open(blob, context: "session.\(name)")) }
        }
    }

    public func storeSession(_ record: SessionRecord, for address: SignalAddress) async throws {
        let name = address.description
        let blob = try cipher.seal(record.serialized(), context: "session.\(name)")
        try await write("storeSession") { db in
            try db.execute(sql: "INSERT OR REPLACE INTO session(address, recordBlob) VALUES (?, ?)", arguments: [name, blob])
        }
    }

    public func deleteSession(for address: SignalAddress) async throws {
        let name = address.description
        try await write("deleteSession") { db in
            try db.execute(sql: "DELETE FROM session WHERE address = ?", arguments: [name])
        }
    }

    @discardableResult
    public func deleteAllSessionsAndIdentities(named name: String) async throws -> [SignalAddress] {
        // Addresses are `name:device`; compared by prefix, not LIKE (a LID name holds `_`).
        let prefix = name + ":"
        return try await write("deleteAllSessionsAndIdentities") { db in
            let gone = try String.fetchAll(
                db, sql: "SELECT address FROM session WHERE substr(address, 1, length(?)) = ?", arguments: [prefix, prefix])
            try db.execute(sql: "DELETE FROM session WHERE substr(address, 1, length(?)) = ?", arguments: [prefix, prefix])
            try db.execute(sql: "DELETE FROM identity WHERE substr(address, 1, length(?)) = ?", arguments: [prefix, prefix])
            return gone.compactMap { SignalAddress(parsing: $0) }
        }
    }

    /// Whether any session exists with `address`.
    public func hasSession(for address: SignalAddress) async throws -> Bool {
        let name = address.description
        return try await read("hasSession") { db in
            try Bool.fetchOne(db, sql: "SELECT EXISTS(SELECT 1 FROM session WHERE address = ?)", arguments: [name]) ?? false
        }
    }

    // MARK: SenderKeyStore

    public func loadSenderKey(for name: SenderKeyName) async throws -> SenderKeyRecord? {
        let cipher = self.cipher
        let (group, sender, context) = Self.senderKeyColumns(name)
        return try await read("loadSenderKey") { db in
            guard let blob = try Data.fetchOne(db, sql: "SELECT recordBlob FROM senderKey WHERE groupID = ? AND sender = ?",
                                               arguments: [group, sender]) else { return nil }
            return try Self.parse(context) { try SenderKeyRecord(serialized: try cipher.open(blob, context: context)) }
        }
    }

    public func storeSenderKey(_ record: SenderKeyRecord, for name: SenderKeyName) async throws {
        let (group, sender, context) = Self.senderKeyColumns(name)
        let blob = try cipher.seal(record.serialized(), context: context)
        try await write("storeSenderKey") { db in
            try db.execute(sql: "INSERT OR REPLACE INTO senderKey(groupID, sender, recordBlob) VALUES (?, ?, ?)",
                           arguments: [group, sender, blob])
        }
    }

    static func senderKeyColumns(_ name: SenderKeyName) -> (String, String, String) {
        (name.groupID, name.sender.description, "senderKey.\(name.groupID).\(name.sender)")
    }

    // MARK: Commit

    /// All changes of one successful Signal operation in ONE SQLite
    /// transaction: either every change is stored or none is.
    public func commit(_ changes: SignalStoreChanges) async throws {
        // Seal first (pure), then write everything in one transaction.
        let identities = changes.identities.map { ($0.0.description, $0.1.rawRepresentation) }
        let sessions = try changes.sessions.map { address, record in
            (address.description, try cipher.seal(record.serialized(), context: "session.\(address)"))
        }
        let removed = changes.removedPreKeys.map { Int64($0) }
        let senderKeys = try changes.senderKeys.map { name, record in
            let (group, sender, context) = Self.senderKeyColumns(name)
            return (group, sender, try cipher.seal(record.serialized(), context: context))
        }
        let pending = try changes.pendingPlaintexts.map { key, plaintext in
            (key.stanza, key.part, try cipher.seal(plaintext, context: Self.pendingContext(key)))
        }
        let now = Date().timeIntervalSince1970
        try await write("commit") { db in
            for (address, key) in identities {
                try db.execute(sql: "INSERT OR REPLACE INTO identity(address, publicKey) VALUES (?, ?)", arguments: [address, key])
            }
            for (address, blob) in sessions {
                try db.execute(sql: "INSERT OR REPLACE INTO session(address, recordBlob) VALUES (?, ?)", arguments: [address, blob])
            }
            for id in removed {
                try db.execute(sql: "DELETE FROM preKey WHERE id = ?", arguments: [id])
            }
            for (group, sender, blob) in senderKeys {
                try db.execute(sql: "INSERT OR REPLACE INTO senderKey(groupID, sender, recordBlob) VALUES (?, ?, ?)",
                               arguments: [group, sender, blob])
            }
            for (stanza, part, blob) in pending {
                try Self.insertPending(db, stanza: stanza, part: part, blob: blob, storedAt: now)
            }
        }
    }

    // MARK: PendingPlaintextStore

    private static func pendingContext(_ key: PendingPlaintextKey) -> String {
        "pendingPlaintext.\(key.stanza).\(key.part)"
    }

    private static func insertPending(_ db: Database, stanza: String, part: String, blob: Data, storedAt: Double) throws {
        try db.execute(sql: "INSERT OR REPLACE INTO pendingPlaintext(stanza, part, plaintextBlob, storedAt) VALUES (?, ?, ?, ?)",
                       arguments: [stanza, part, blob, storedAt])
    }

    public func loadPendingPlaintext(_ key: PendingPlaintextKey) async throws -> Data? {
        let cipher = self.cipher
        let context = Self.pendingContext(key)
        return try await read("loadPendingPlaintext") { db in
            guard let blob = try Data.fetchOne(db, sql: "SELECT plaintextBlob FROM pendingPlaintext WHERE stanza = ? AND part = ?",
                                               arguments: [key.stanza, key.part]) else { return nil }
            return try cipher.open(blob, context: context)
        }
    }

    public func storePendingPlaintext(_ plaintext: Data, for key: PendingPlaintextKey) async throws {
        let blob = try cipher.seal(plaintext, context: Self.pendingContext(key))
        let now = Date().timeIntervalSince1970
        try await write("storePendingPlaintext") { db in
            try Self.insertPending(db, stanza: key.stanza, part: key.part, blob: blob, storedAt: now)
        }
    }

    public func removePendingPlaintexts(stanza: String) async throws {
        try await write("removePendingPlaintexts") { db in
            try db.execute(sql: "DELETE FROM pendingPlaintext WHERE stanza = ?", arguments: [stanza])
        }
    }

    @discardableResult
    public func prunePendingPlaintexts(keepingNewest: Int, storedBefore: Date) async throws -> Int {
        let cutoff = storedBefore.timeIntervalSince1970
        let keep = Int64(max(0, keepingNewest))
        return try await write("prunePendingPlaintexts") { db in
            try db.execute(sql: "DELETE FROM pendingPlaintext WHERE storedAt < ?", arguments: [cutoff])
            var deleted = db.changesCount
            try db.execute(sql: """
                DELETE FROM pendingPlaintext WHERE rowid NOT IN
                    (SELECT rowid FROM pendingPlaintext ORDER BY storedAt DESC, rowid DESC LIMIT ?)
                """, arguments: [keep])
            deleted += db.changesCount
            return deleted
        }
    }

    /// How many plaintexts are kept (tests, metrics).
    public func pendingPlaintextCount() async throws -> Int {
        try await read("pendingPlaintextCount") { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM pendingPlaintext") ?? 0 }
    }

    private static func parse<T>(_ what: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as StoreError { throw error } catch {
            throw StoreError(.corrupt, "stored \(what) does not parse")
        }
    }
}
