import Foundation
import Logging
import PostgresNIO
import SwiftProtobuf
import WABinary
import WAClient
import WACrypto
import WAProto
import WASignal

/// One device's keys in PostgreSQL: the same tables as `session.sqlite`, each with the device's
/// id as the first key column, which every query below takes from `deviceID` (a handle reaches
/// no other device's rows). Key material is sealed with the device's `KeyCipher`, with the same
/// contexts as the SQLite store, so a blob cannot be moved to another row or device.
///
/// A handle opened with a `generation` checks the device's fence in every writing transaction
/// (`SELECT … FOR SHARE` on `device_fence`, then the write, then commit): a raise waits for the
/// writes in flight, and a write after it sees it, so a paused-then-resumed writer cannot slip in.
public final class PostgresKeyStore: DeviceKeyStore {
    public let deviceID: DeviceID
    let database: PostgresDatabase
    let cipher: KeyCipher
    public let generation: Int64?
    var logger: Logger { database.logger }
    var id: String { deviceID.rawValue }

    init(deviceID: DeviceID, database: PostgresDatabase, cipher: KeyCipher, generation: Int64?) {
        self.deviceID = deviceID
        self.database = database
        self.cipher = cipher
        self.generation = generation
    }

    @discardableResult
    func read<T: Sendable>(_ what: String, _ body: (PostgresConnection) async throws -> T) async throws(StoreError) -> T {
        try await database.read(what, body)
    }

    /// One transaction, refused with `store.fenced` (nothing written) when the device's fence passed this handle's generation.
    @discardableResult
    func write<T: Sendable>(_ what: String, _ body: (PostgresConnection) async throws -> T) async throws(StoreError) -> T {
        let (id, generation, logger) = (self.id, self.generation, self.logger)
        return try await database.write(what) { c in
            if let generation {
                let fence = try await c.row("SELECT fence FROM device_fence WHERE device_id = \(id) FOR SHARE", logger)?.decode(Int64.self)
                guard let fence else { throw StoreError(.notFound, "device \(id) has no fence row") }
                if fence > generation {
                    throw StoreError(.fenced, "\(what): device \(id) is fenced at generation \(fence), this handle has \(generation)")
                }
            }
            return try await body(c)
        }
    }

    static func parse<T>(_ what: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as StoreError { throw error } catch {
            throw StoreError(.corrupt, "stored \(what) does not parse")
        }
    }

    // MARK: Key check

    /// Installs the key check on a new device, or verifies it (`store.wrong_master_key`, `store.encryption_mismatch`).
    static func verifyOrInstallKeyCheck(_ database: PostgresDatabase, device: DeviceID, cipher: KeyCipher) async throws(StoreError) {
        let logger = database.logger
        let mode = cipher.encrypts ? "aes-256-gcm" : "none"
        let check = try cipher.seal(SessionKeyCheck.checkValue, context: SessionKeyCheck.context)
        let stored = try await database.write("key check") { c -> (String, Data)? in
            if let row = try await c.row("SELECT encryption, key_check FROM key_meta WHERE device_id = \(device.rawValue)", logger) {
                return try row.decode((String, Data).self)
            }
            try await c.run("""
                INSERT INTO key_meta (device_id, encryption, key_check) VALUES (\(device.rawValue), \(mode), \(check))
                """, logger)
            return nil
        }
        guard let stored else { return }
        switch (stored.0, cipher.encrypts) {
        case ("none", true):
            throw StoreError(.encryptionMismatch, "the device's keys were stored without encryption; a master key is now configured")
        case ("aes-256-gcm", false):
            throw StoreError(.wrongMasterKey, "the device's keys are encrypted and no master key is configured")
        case ("none", false), ("aes-256-gcm", true):
            let opened = try cipher.open(stored.1, context: SessionKeyCheck.context)
            guard opened == SessionKeyCheck.checkValue else { throw StoreError(.wrongMasterKey, "key check value differs") }
        default:
            throw StoreError(.corrupt, "unknown encryption mode in key_meta")
        }
    }

    // MARK: DeviceStore

    public func loadDevice() async throws -> DeviceRecord? {
        let (id, cipher, logger) = (self.id, self.cipher, self.logger)
        return try await read("loadDevice") { c in
            guard let row = try await c.row("""
                SELECT noise_key_blob, identity_key_blob, registration_id, signed_pre_key_id, signed_pre_key_blob,
                    signed_pre_key_signature, adv_secret_blob, account, jid, lid, push_name, platform, business_name
                FROM account WHERE device_id = \(id)
                """, logger) else { return nil }
            let (noise, identity, registrationID, signedID, signed, signature, adv, account, jid, lid, pushName, platform, businessName) =
                try row.decode((Data, Data, Int64, Int64, Data, Data, Data, Data?, String?, String?, String, String, String).self)
            func pair(_ blob: Data, _ context: String) throws -> Curve25519KeyPair {
                let raw = try cipher.open(blob, context: context)
                do { return Curve25519KeyPair(privateKey: try Curve25519PrivateKey(rawRepresentation: raw)) } catch {
                    throw StoreError(.corrupt, "\(context) is not a Curve25519 key")
                }
            }
            func parsed(_ text: String?, _ column: String) throws -> JID? {
                guard let text else { return nil }
                do { return try JID(parsing: text) } catch { throw StoreError(.corrupt, "stored \(column) does not parse") }
            }
            var identityRecord: WAAdv_ADVSignedDeviceIdentity?
            if let account {
                do { identityRecord = try WAAdv_ADVSignedDeviceIdentity(serializedBytes: account) } catch {
                    throw StoreError(.corrupt, "stored account identity does not parse")
                }
            }
            return DeviceRecord(
                noiseKey: try pair(noise, "account.noiseKey"),
                identityKey: try pair(identity, "account.identityKey"),
                registrationID: UInt32(truncatingIfNeeded: registrationID),
                signedPreKey: SignedPreKey(
                    id: UInt32(truncatingIfNeeded: signedID), keyPair: try pair(signed, "account.signedPreKey"), signature: signature),
                advSecret: try cipher.open(adv, context: "account.advSecret"),
                account: identityRecord, jid: try parsed(jid, "jid"), lid: try parsed(lid, "lid"),
                pushName: pushName, platform: platform, businessName: businessName)
        }
    }

    public func saveDevice(_ record: DeviceRecord) async throws {
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
        let (id, logger) = (self.id, self.logger)
        try await write("saveDevice") { c in
            try await c.run("""
                INSERT INTO account (device_id, noise_key_blob, identity_key_blob, registration_id, signed_pre_key_id,
                    signed_pre_key_blob, signed_pre_key_signature, adv_secret_blob, account, jid, lid, push_name, platform, business_name)
                VALUES (\(id), \(noise), \(identity), \(registrationID), \(signedID), \(signed), \(signature), \(adv), \(account),
                    \(jid), \(lid), \(pushName), \(platform), \(businessName))
                ON CONFLICT (device_id) DO UPDATE SET noise_key_blob = excluded.noise_key_blob,
                    identity_key_blob = excluded.identity_key_blob, registration_id = excluded.registration_id,
                    signed_pre_key_id = excluded.signed_pre_key_id, signed_pre_key_blob = excluded.signed_pre_key_blob,
                    signed_pre_key_signature = excluded.signed_pre_key_signature, adv_secret_blob = excluded.adv_secret_blob,
                    account = excluded.account, jid = excluded.jid, lid = excluded.lid, push_name = excluded.push_name,
                    platform = excluded.platform, business_name = excluded.business_name
                """, logger)
        }
    }

    /// Logout: deletes every key, identity, session, sender key, mapping, token and app state
    /// of this device; the slot (registry row, history, outbox, fence) stays.
    public func wipe() async throws {
        let (id, logger) = (self.id, self.logger)
        try await write("wipe") { c in
            for table in ["account", "identity", "pre_key", "signed_pre_key", "session", "sender_key", "pending_plaintext",
                          "lid_mapping", "privacy_token", "nct_salt", "app_state_sync_key", "app_state_version",
                          "app_state_mutation_mac", "app_state_contact", "app_state_chat", "app_state_setting"] {
                try await c.run("DELETE FROM \(unescaped: table) WHERE device_id = \(id)", logger)
            }
        }
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
        let (id, logger, name) = (self.id, self.logger, address.description)
        let bytes = try await read("identity") { c in
            try await c.row("SELECT public_key FROM identity WHERE device_id = \(id) AND address = \(name)", logger)?.decode(Data.self)
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
        let (id, logger, name, raw) = (self.id, self.logger, address.description, key.rawRepresentation)
        return try await write("saveIdentity") { c in
            let old = try await c.row("SELECT public_key FROM identity WHERE device_id = \(id) AND address = \(name) FOR UPDATE", logger)?
                .decode(Data.self)
            try await Self.upsertIdentity(c, logger, id, name, raw)
            return old != nil && old != raw
        }
    }

    static func upsertIdentity(_ c: PostgresConnection, _ logger: Logger, _ id: String, _ address: String, _ key: Data) async throws {
        try await c.run("""
            INSERT INTO identity (device_id, address, public_key) VALUES (\(id), \(address), \(key))
            ON CONFLICT (device_id, address) DO UPDATE SET public_key = excluded.public_key
            """, logger)
    }

    public func acceptIdentity(_ change: IdentityChange) async throws {
        guard let key = change.newKey else { return }
        try await saveIdentity(key, for: change.address)
    }

    // MARK: PreKeyStore

    public func loadPreKey(id preKeyID: UInt32) async throws -> PreKeyRecord? {
        let (id, cipher, logger) = (self.id, self.cipher, self.logger)
        return try await read("loadPreKey") { c in
            guard let blob = try await c.row("SELECT record_blob FROM pre_key WHERE device_id = \(id) AND id = \(Int64(preKeyID))", logger)?
                .decode(Data.self) else { return nil }
            return try Self.parse("prekey \(preKeyID)") { try PreKeyRecord(serialized: try cipher.open(blob, context: "preKey.\(preKeyID)")) }
        }
    }

    public func storePreKey(_ record: PreKeyRecord) async throws {
        try await storePreKeys([record])
    }

    public func storePreKeys(_ records: [PreKeyRecord]) async throws {
        let rows = try records.map { (Int64($0.id), try cipher.seal($0.serialized(), context: "preKey.\($0.id)")) }
        let (id, logger) = (self.id, self.logger)
        try await write("storePreKeys") { c in
            for (preKeyID, blob) in rows {
                try await c.run("""
                    INSERT INTO pre_key (device_id, id, record_blob) VALUES (\(id), \(preKeyID), \(blob))
                    ON CONFLICT (device_id, id) DO UPDATE SET record_blob = excluded.record_blob
                    """, logger)
            }
        }
    }

    public func removePreKey(id preKeyID: UInt32) async throws {
        let (id, logger) = (self.id, self.logger)
        try await write("removePreKey") { c in
            try await c.run("DELETE FROM pre_key WHERE device_id = \(id) AND id = \(Int64(preKeyID))", logger)
        }
    }

    public func preKeyCount() async throws -> Int {
        let (id, logger) = (self.id, self.logger)
        return try await read("preKeyCount") { c in
            Int(try await c.row("SELECT count(*) FROM pre_key WHERE device_id = \(id)", logger)?.decode(Int64.self) ?? 0)
        }
    }

    public func maxPreKeyID() async throws -> UInt32? {
        let (id, logger) = (self.id, self.logger)
        return try await read("maxPreKeyID") { c in
            try await c.row("SELECT max(id) FROM pre_key WHERE device_id = \(id)", logger)?.decode(Int64?.self)
                .map { UInt32(truncatingIfNeeded: $0) }
        }
    }

    /// Reserves `count` prekey ids from the device's counter (24-bit, wrapping to 1), as the SQLite store does.
    func reservePreKeyIDs(_ count: Int) async throws -> [UInt32] {
        guard count > 0 else { return [] }
        let (id, logger) = (self.id, self.logger)
        return try await write("reservePreKeyIDs") { c in
            let stored = try await c.row("SELECT next_id FROM pre_key_counter WHERE device_id = \(id) FOR UPDATE", logger)?.decode(Int64.self)
            let start: UInt32
            if let stored { start = UInt32(truncatingIfNeeded: stored) } else {
                // A new device starts after its highest stored prekey (as SQLite's v3 migration does).
                let highest = try await c.row("SELECT max(id) FROM pre_key WHERE device_id = \(id)", logger)?.decode(Int64?.self) ?? nil
                start = UInt32(truncatingIfNeeded: (highest ?? 0) % 0xFF_FFFF + 1)
            }
            let ids = (0..<UInt32(count)).map { (start &+ $0 &- 1) % 0xFF_FFFF + 1 }
            let next = Int64(ids.last! % 0xFF_FFFF + 1)
            try await c.run("""
                INSERT INTO pre_key_counter (device_id, next_id) VALUES (\(id), \(next))
                ON CONFLICT (device_id) DO UPDATE SET next_id = excluded.next_id
                """, logger)
            return ids
        }
    }

    public func allocatePreKeyIDs(_ count: Int) async throws -> [UInt32] {
        try await reservePreKeyIDs(count)
    }

    // MARK: SignedPreKeyStore

    public func loadSignedPreKey(id signedID: UInt32) async throws -> SignedPreKeyRecord? {
        let (id, cipher, logger) = (self.id, self.cipher, self.logger)
        let stored = try await read("loadSignedPreKey") { c -> SignedPreKeyRecord? in
            guard let blob = try await c.row(
                "SELECT record_blob FROM signed_pre_key WHERE device_id = \(id) AND id = \(Int64(signedID))", logger)?
                .decode(Data.self) else { return nil }
            return try Self.parse("signed prekey \(signedID)") {
                try SignedPreKeyRecord(serialized: try cipher.open(blob, context: "signedPreKey.\(signedID)"))
            }
        }
        if let stored { return stored }
        guard let device = try await loadDevice(), device.signedPreKey.id == signedID else { return nil }
        return SignedPreKeyRecord(id: signedID, keyPair: device.signedPreKey.keyPair, signature: device.signedPreKey.signature, timestamp: 0)
    }

    public func storeSignedPreKey(_ record: SignedPreKeyRecord) async throws {
        let blob = try cipher.seal(record.serialized(), context: "signedPreKey.\(record.id)")
        let (id, logger, signedID) = (self.id, self.logger, Int64(record.id))
        try await write("storeSignedPreKey") { c in
            try await c.run("""
                INSERT INTO signed_pre_key (device_id, id, record_blob) VALUES (\(id), \(signedID), \(blob))
                ON CONFLICT (device_id, id) DO UPDATE SET record_blob = excluded.record_blob
                """, logger)
        }
    }

    // MARK: SessionStore

    public func loadSession(for address: SignalAddress) async throws -> SessionRecord? {
        let (id, cipher, logger, name) = (self.id, self.cipher, self.logger, address.description)
        return try await read("loadSession") { c in
            guard let blob = try await c.row("SELECT record_blob FROM session WHERE device_id = \(id) AND address = \(name)", logger)?
                .decode(Data.self) else { return nil }
            return try Self.parse("session \(name)") { try SessionRecord(serialized: try cipher.open(blob, context: "session.\(name)")) }
        }
    }

    public func storeSession(_ record: SessionRecord, for address: SignalAddress) async throws {
        let name = address.description
        let blob = try cipher.seal(record.serialized(), context: "session.\(name)")
        let (id, logger) = (self.id, self.logger)
        try await write("storeSession") { c in try await Self.upsertSession(c, logger, id, name, blob) }
    }

    static func upsertSession(_ c: PostgresConnection, _ logger: Logger, _ id: String, _ address: String, _ blob: Data) async throws {
        try await c.run("""
            INSERT INTO session (device_id, address, record_blob) VALUES (\(id), \(address), \(blob))
            ON CONFLICT (device_id, address) DO UPDATE SET record_blob = excluded.record_blob
            """, logger)
    }

    public func deleteSession(for address: SignalAddress) async throws {
        let (id, logger, name) = (self.id, self.logger, address.description)
        try await write("deleteSession") { c in
            try await c.run("DELETE FROM session WHERE device_id = \(id) AND address = \(name)", logger)
        }
    }

    @discardableResult
    public func deleteAllSessionsAndIdentities(named name: String) async throws -> [SignalAddress] {
        // Addresses are `name:device`; compared by prefix, not LIKE (a LID name holds `_`).
        let prefix = name + ":"
        let (id, logger) = (self.id, self.logger)
        return try await write("deleteAllSessionsAndIdentities") { c in
            let gone = try await c.rows("""
                DELETE FROM session WHERE device_id = \(id) AND left(address, length(\(prefix))) = \(prefix) RETURNING address
                """, logger).map { try $0.decode(String.self) }
            try await c.run("DELETE FROM identity WHERE device_id = \(id) AND left(address, length(\(prefix))) = \(prefix)", logger)
            return gone.sorted().compactMap { SignalAddress(parsing: $0) }
        }
    }

    public func hasSession(for address: SignalAddress) async throws -> Bool {
        let (id, logger, name) = (self.id, self.logger, address.description)
        return try await read("hasSession") { c in
            try await c.row("SELECT 1 FROM session WHERE device_id = \(id) AND address = \(name)", logger) != nil
        }
    }

    // MARK: SenderKeyStore

    static func senderKeyColumns(_ name: SenderKeyName) -> (String, String, String) {
        (name.groupID, name.sender.description, "senderKey.\(name.groupID).\(name.sender)")
    }

    public func loadSenderKey(for name: SenderKeyName) async throws -> SenderKeyRecord? {
        let (id, cipher, logger) = (self.id, self.cipher, self.logger)
        let (group, sender, context) = Self.senderKeyColumns(name)
        return try await read("loadSenderKey") { c in
            guard let blob = try await c.row("""
                SELECT record_blob FROM sender_key WHERE device_id = \(id) AND group_id = \(group) AND sender = \(sender)
                """, logger)?.decode(Data.self) else { return nil }
            return try Self.parse(context) { try SenderKeyRecord(serialized: try cipher.open(blob, context: context)) }
        }
    }

    public func storeSenderKey(_ record: SenderKeyRecord, for name: SenderKeyName) async throws {
        let (group, sender, context) = Self.senderKeyColumns(name)
        let blob = try cipher.seal(record.serialized(), context: context)
        let (id, logger) = (self.id, self.logger)
        try await write("storeSenderKey") { c in try await Self.upsertSenderKey(c, logger, id, group, sender, blob) }
    }

    static func upsertSenderKey(_ c: PostgresConnection, _ logger: Logger, _ id: String, _ group: String, _ sender: String,
                                _ blob: Data) async throws {
        try await c.run("""
            INSERT INTO sender_key (device_id, group_id, sender, record_blob) VALUES (\(id), \(group), \(sender), \(blob))
            ON CONFLICT (device_id, group_id, sender) DO UPDATE SET record_blob = excluded.record_blob
            """, logger)
    }

    // MARK: Commit

    /// All changes of one successful Signal operation in ONE transaction (fenced like every write).
    public func commit(_ changes: SignalStoreChanges) async throws {
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
        let (id, logger) = (self.id, self.logger)
        try await write("commit") { c in
            for (address, key) in identities { try await Self.upsertIdentity(c, logger, id, address, key) }
            for (address, blob) in sessions { try await Self.upsertSession(c, logger, id, address, blob) }
            if !removed.isEmpty { try await c.run("DELETE FROM pre_key WHERE device_id = \(id) AND id = ANY(\(removed))", logger) }
            for (group, sender, blob) in senderKeys { try await Self.upsertSenderKey(c, logger, id, group, sender, blob) }
            for (stanza, part, blob) in pending { try await Self.upsertPending(c, logger, id, stanza, part, blob, now) }
        }
    }

    // MARK: PendingPlaintextStore

    static func pendingContext(_ key: PendingPlaintextKey) -> String { "pendingPlaintext.\(key.stanza).\(key.part)" }

    static func upsertPending(_ c: PostgresConnection, _ logger: Logger, _ id: String, _ stanza: String, _ part: String,
                              _ blob: Data, _ storedAt: Double) async throws {
        // A replace takes a new `seq`, as SQLite's INSERT OR REPLACE takes a new rowid.
        try await c.run("""
            INSERT INTO pending_plaintext (device_id, stanza, part, plaintext_blob, stored_at) VALUES (\(id), \(stanza), \(part), \(blob), \(storedAt))
            ON CONFLICT (device_id, stanza, part) DO UPDATE SET plaintext_blob = excluded.plaintext_blob,
                stored_at = excluded.stored_at, seq = excluded.seq
            """, logger)
    }

    public func loadPendingPlaintext(_ key: PendingPlaintextKey) async throws -> Data? {
        let (id, cipher, logger, context) = (self.id, self.cipher, self.logger, Self.pendingContext(key))
        return try await read("loadPendingPlaintext") { c in
            guard let blob = try await c.row("""
                SELECT plaintext_blob FROM pending_plaintext WHERE device_id = \(id) AND stanza = \(key.stanza) AND part = \(key.part)
                """, logger)?.decode(Data.self) else { return nil }
            return try cipher.open(blob, context: context)
        }
    }

    public func storePendingPlaintext(_ plaintext: Data, for key: PendingPlaintextKey) async throws {
        let blob = try cipher.seal(plaintext, context: Self.pendingContext(key))
        let now = Date().timeIntervalSince1970
        let (id, logger) = (self.id, self.logger)
        try await write("storePendingPlaintext") { c in try await Self.upsertPending(c, logger, id, key.stanza, key.part, blob, now) }
    }

    public func removePendingPlaintexts(stanza: String) async throws {
        let (id, logger) = (self.id, self.logger)
        try await write("removePendingPlaintexts") { c in
            try await c.run("DELETE FROM pending_plaintext WHERE device_id = \(id) AND stanza = \(stanza)", logger)
        }
    }

    @discardableResult
    public func prunePendingPlaintexts(keepingNewest: Int, storedBefore: Date) async throws -> Int {
        let cutoff = storedBefore.timeIntervalSince1970
        let keep = Int64(max(0, keepingNewest))
        let (id, logger) = (self.id, self.logger)
        return try await write("prunePendingPlaintexts") { c in
            var deleted = try await c.run(
                "DELETE FROM pending_plaintext WHERE device_id = \(id) AND stored_at < \(cutoff) RETURNING 1", logger)
            deleted += try await c.run("""
                DELETE FROM pending_plaintext WHERE device_id = \(id) AND seq NOT IN
                    (SELECT seq FROM pending_plaintext WHERE device_id = \(id) ORDER BY stored_at DESC, seq DESC LIMIT \(keep))
                RETURNING 1
                """, logger)
            return deleted
        }
    }

    public func pendingPlaintextCount() async throws -> Int {
        let (id, logger) = (self.id, self.logger)
        return try await read("pendingPlaintextCount") { c in
            Int(try await c.row("SELECT count(*) FROM pending_plaintext WHERE device_id = \(id)", logger)?.decode(Int64.self) ?? 0)
        }
    }
}
