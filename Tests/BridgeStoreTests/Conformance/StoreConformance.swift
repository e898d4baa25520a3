import Foundation
import WABinary
import WAClient
import WACrypto
import WAProto
import WASignal
import XCTest
@testable import BridgeStore

/// The store's contract, written once and run on every backend: `StoreConformanceSQLiteTests`
/// and `StoreConformancePostgresTests` each list the `check…` bodies below as their tests.
/// A subclass only says how to make a backend.
class StoreConformanceCase: XCTestCase {
    /// A fresh backend for one test (overridden).
    func makeBackend() async throws -> any StoreBackend { fatalError("a subclass makes the backend") }

    private var backends: [any StoreBackend] = []

    override func tearDown() async throws {
        for backend in backends { await backend.close() }
        backends = []
        try await super.tearDown()
    }

    /// A backend closed when the test ends.
    func backend() async throws -> any StoreBackend {
        let backend = try await makeBackend()
        backends.append(backend)
        return backend
    }

    /// One store on a fresh backend.
    func store(masterKey: MasterKey? = nil) async throws -> BridgeStore {
        try await backend().open(masterKey: masterKey)
    }

    /// A device with keys (its identity, five prekeys) and its handles.
    func device(_ store: BridgeStore, _ name: String) async throws -> DeviceStorage {
        let id = try await store.createDevice(id: DeviceID(name)).id
        let storage = try await store.device(id)
        try await storage.keys.saveDevice(DeviceRecord.generate())
        try await storage.keys.storePreKeys(KeyHelper.generatePreKeys(start: 1, count: 5))
        return storage
    }

    // MARK: Registry

    func checkRegistryCRUDAndSettings() async throws {
        let backend = try await backend()
        let store = try await backend.open(masterKey: nil)
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
        let sales = try await store.createDevice(id: DeviceID("sales-1"), settings: #"{"rate":5}"#)
        XCTAssertEqual(sales.state, .disconnected)
        XCTAssertEqual(sales.settings, #"{"rate":5}"#)
        let generated = try await store.createDevice()
        XCTAssertNotEqual(generated.id, sales.id)
        await assertStoreError(.deviceExists) { try await store.createDevice(id: try DeviceID("sales-1")) }
        await assertStoreError(.invalidSettings) { try await store.createDevice(id: try DeviceID("bad"), settings: "[1]") }
        let listed = try await store.listDevices().map(\.id)
        XCTAssertEqual(listed, [sales.id, generated.id])

        let connecting = try await store.registry.updateState(sales.id, to: .connecting, now: t0)
        XCTAssertEqual(connecting.state, .connecting)
        XCTAssertEqual(connecting.updatedAt.timeIntervalSince1970, t0.timeIntervalSince1970, accuracy: 0.001)
        try await store.registry.setIdentity(sales.id, jid: "15551234567:3@s.whatsapp.net", lid: "123456789:3@lid", pushName: "Sales")
        try await store.registry.setIdentity(sales.id, jid: "15551234567:3@s.whatsapp.net", lid: "123456789:3@lid", pushName: nil)
        try await store.registry.updateState(sales.id, to: .loggedOut)
        try await store.registry.updateSettings(sales.id, #"{"rate":7}"#)
        await assertStoreError(.invalidSettings) { try await store.registry.updateSettings(sales.id, "nope") }

        // A second store on the same backing (a restart) reads what the first wrote.
        let again = try await backend.open(masterKey: nil)
        let read = try await again.registry.device(sales.id)
        XCTAssertEqual(read.jid, "15551234567:3@s.whatsapp.net")
        XCTAssertEqual(read.lid, "123456789:3@lid")
        XCTAssertEqual(read.pushName, "Sales", "a nil push name keeps the stored one")
        XCTAssertEqual(read.state, .loggedOut)
        XCTAssertEqual(read.settings, #"{"rate":7}"#)
        let count = try await again.registry.deviceCount()
        XCTAssertEqual(count, 2)

        try await again.deleteDevice(sales.id)
        await assertStoreError(.notFound) { try await again.registry.device(sales.id) }
        await assertStoreError(.notFound) { try await again.device(sales.id) }
        await assertStoreError(.notFound) { try await again.deleteDevice(sales.id) }
        await assertStoreError(.notFound) { try await again.registry.updateState(sales.id, to: .connected) }
        let left = try await again.listDevices().map(\.id)
        XCTAssertEqual(left, [generated.id])
        // The same id can be taken again, with nothing of the old device.
        let reborn = try await again.createDevice(id: sales.id)
        XCTAssertEqual(reborn.settings, "{}")
        let keys = try await again.device(sales.id).keys.loadDevice()
        XCTAssertNil(keys)
    }

    func checkRegistryOutbox() async throws {
        let store = try await store()
        let r = store.registry
        let now = Date()
        try await r.appendEvents([
            RegistryOutboxEvent(eventID: "c-a", deviceID: "a", routingKey: "a.device.created", payload: Data([1]), createdAt: now),
            RegistryOutboxEvent(eventID: "c-b", deviceID: "b", routingKey: "b.device.created", payload: Data([2]), createdAt: now),
            RegistryOutboxEvent(eventID: "d-a", deviceID: "a", routingKey: "a.device.deleted", payload: Data([3]), createdAt: now),
        ])
        try await r.appendEvents([RegistryOutboxEvent(eventID: "c-a", deviceID: "a", routingKey: "x", payload: Data(), createdAt: now)])
        let all = try await r.peekEvents()
        XCTAssertEqual(all.map(\.eventID), ["c-a", "c-b", "d-a"])
        XCTAssertEqual(all.map(\.payload), [Data([1]), Data([2]), Data([3])])
        XCTAssertEqual(all.first?.routingKey, "a.device.created", "a repeated id does not replace the row")
        let pendingA = try await r.pendingEventCount(deviceID: DeviceID("a"))
        XCTAssertEqual(pendingA, 2)
        let total = try await r.outboxCount()
        XCTAssertEqual(total, 3)
        let limited = try await r.peekEvents(limit: 1).map(\.eventID)
        XCTAssertEqual(limited, ["c-a"])
        let deleted = try await r.deleteEvents(sequences: all.prefix(2).compactMap(\.sequence))
        XCTAssertEqual(deleted, 2)
        let rest = try await r.peekEvents().map(\.eventID)
        XCTAssertEqual(rest, ["d-a"])
        let pendingB = try await r.pendingEventCount(deviceID: DeviceID("b"))
        XCTAssertEqual(pendingB, 0)
    }

    // MARK: Keys

    func checkDeviceKeysRoundTrip() async throws {
        let backend = try await backend()
        let store = try await backend.open(masterKey: nil)
        let id = try await store.createDevice(id: DeviceID("rt")).id
        let keys = try await store.device(id).keys
        let empty = try await keys.loadDevice()
        XCTAssertNil(empty)
        await assertStoreError(.notFound) { try await keys.identityKeyPair() }

        var record = DeviceRecord.generate()
        var account = WAAdv_ADVSignedDeviceIdentity()
        account.details = Data([1, 2, 3])
        account.accountSignatureKey = Data(repeating: 7, count: 32)
        record.account = account
        record.jid = try JID(parsing: "15551234567:3@s.whatsapp.net")
        record.lid = try JID(parsing: "123456789:3@lid")
        record.pushName = "Sales"
        record.platform = "android"
        record.businessName = "ACME"
        try await keys.saveDevice(record)
        record.pushName = "Sales 2"
        try await keys.saveDevice(record)  // a second save replaces the first

        let again = try await backend.open(masterKey: nil)
        let reloaded = try await again.device(id).keys.loadDevice()
        let loaded = try XCTUnwrap(reloaded)
        XCTAssertEqual(loaded.noiseKey.privateKey.rawRepresentation, record.noiseKey.privateKey.rawRepresentation)
        XCTAssertEqual(loaded.identityKey.privateKey.rawRepresentation, record.identityKey.privateKey.rawRepresentation)
        XCTAssertEqual(loaded.registrationID, record.registrationID)
        XCTAssertEqual(loaded.signedPreKey.id, record.signedPreKey.id)
        XCTAssertEqual(loaded.signedPreKey.keyPair.publicKey, record.signedPreKey.keyPair.publicKey)
        XCTAssertEqual(loaded.signedPreKey.signature, record.signedPreKey.signature)
        XCTAssertEqual(loaded.advSecret, record.advSecret)
        XCTAssertEqual(loaded.account, account)
        XCTAssertEqual(loaded.jid, record.jid)
        XCTAssertEqual(loaded.lid, record.lid)
        XCTAssertEqual(loaded.pushName, "Sales 2")
        XCTAssertEqual(loaded.platform, "android")
        XCTAssertEqual(loaded.businessName, "ACME")
        let registration = try await keys.localRegistrationID()
        XCTAssertEqual(registration, record.registrationID)
        let signed = try await keys.loadSignedPreKey(id: record.signedPreKey.id)
        XCTAssertEqual(signed?.keyPair.publicKey, record.signedPreKey.keyPair.publicKey, "the record's own signed prekey")

        try await keys.wipe()
        let wiped = try await keys.loadDevice()
        XCTAssertNil(wiped)
        let slot = try await store.registry.device(id)
        XCTAssertEqual(slot.id, id, "a wipe keeps the slot")
    }

    func checkKeysSealedWithTheMasterKeyAndRefusedWithAWrongOne() async throws {
        let backend = try await backend()
        let master = MasterKey.generate()
        let store = try await backend.open(masterKey: master)
        let id = try await store.createDevice(id: DeviceID("sealed")).id
        let record = DeviceRecord.generate()
        try await store.device(id).keys.saveDevice(record)

        let wrong = try await backend.open(masterKey: MasterKey.generate())
        await assertStoreError(.wrongMasterKey) { try await wrong.device(id) }
        let none = try await backend.open(masterKey: nil)
        await assertStoreError(.wrongMasterKey) { try await none.device(id) }
        let right = try await backend.open(masterKey: master)
        let loaded = try await right.device(id).keys.loadDevice()
        XCTAssertEqual(loaded?.identityKey.privateKey.rawRepresentation, record.identityKey.privateKey.rawRepresentation)

        // A device stored without a master key refuses one configured later.
        let plain = try await none.createDevice(id: DeviceID("plain")).id
        let keyed = try await backend.open(masterKey: master)
        await assertStoreError(.encryptionMismatch) { try await keyed.device(plain) }
    }

    func checkSignalSessionsPreKeysSenderKeysAndCommit() async throws {
        let store = try await store()
        let alice = try await device(store, "alice")
        let bob = try await device(store, "bob")
        let aliceAddress = SignalAddress(name: "111", deviceID: 0)
        let bobAddress = SignalAddress(name: "222", deviceID: 0)

        // Alice starts a session from Bob's bundle; Bob answers; both sides keep working after a restart of the handles.
        let bobLoaded = try await bob.keys.loadDevice()
        let bobRecord = try XCTUnwrap(bobLoaded)
        let bobPreKeyLoaded = try await bob.keys.loadPreKey(id: 2)
        let bobPreKey = try XCTUnwrap(bobPreKeyLoaded)
        let bundle = PreKeyBundle(
            registrationID: bobRecord.registrationID, deviceID: 0, preKeyID: 2, preKey: bobPreKey.keyPair.publicKey,
            signedPreKeyID: bobRecord.signedPreKey.id, signedPreKey: bobRecord.signedPreKey.keyPair.publicKey,
            signedPreKeySignature: bobRecord.signedPreKey.signature, identityKey: bobRecord.identityKey.publicKey)
        try await SessionBuilder(store: alice.keys, address: bobAddress).process(bundle: bundle)
        let first = try await SessionCipher(store: alice.keys, address: bobAddress).encrypt(Data("hello".utf8))
        let opened = try await SessionCipher(store: bob.keys, address: aliceAddress).decrypt(first)
        XCTAssertEqual(String(decoding: opened, as: UTF8.self), "hello")
        let used = try await bob.keys.loadPreKey(id: 2)
        XCTAssertNil(used, "the one-time prekey is consumed")
        let reply = try await SessionCipher(store: bob.keys, address: aliceAddress).encrypt(Data("hi".utf8))
        let back = try await SessionCipher(store: alice.keys, address: bobAddress).decrypt(reply)
        XCTAssertEqual(String(decoding: back, as: UTF8.self), "hi")
        let hasSession = try await alice.keys.hasSession(for: bobAddress)
        XCTAssertTrue(hasSession)
        let aliceIdentity = try await bob.keys.identity(for: aliceAddress)
        let aliceOwn = try await alice.keys.identityKeyPair().publicKey
        XCTAssertEqual(aliceIdentity, aliceOwn)

        // Prekeys: count, highest id, removal, ids reserved never twice.
        let count = try await bob.keys.preKeyCount()
        XCTAssertEqual(count, 4)
        let highest = try await bob.keys.maxPreKeyID()
        XCTAssertEqual(highest, 5)
        try await bob.keys.removePreKey(id: 5)
        let afterRemove = try await bob.keys.maxPreKeyID()
        XCTAssertEqual(afterRemove, 4)
        let ids1 = try await bob.keys.allocatePreKeyIDs(3)
        let ids2 = try await bob.keys.allocatePreKeyIDs(2)
        XCTAssertEqual(Set(ids1).intersection(ids2), [])
        XCTAssertEqual(ids2.first, ids1.last.map { $0 + 1 })

        // Sender keys, by group and sender.
        let name = SenderKeyName(groupID: "120363000000000000@g.us", sender: aliceAddress)
        try await alice.keys.storeSenderKey(SenderKeyRecord(), for: name)
        let stored = try await alice.keys.loadSenderKey(for: name)
        XCTAssertNotNil(stored)
        let other = try await alice.keys.loadSenderKey(for: SenderKeyName(groupID: name.groupID, sender: bobAddress))
        XCTAssertNil(other)

        // One commit: identity, session, prekey removal, sender key, pending plaintext together.
        let carol = SignalAddress(name: "333", deviceID: 1)
        var changes = SignalStoreChanges()
        changes.identities = [(carol, Curve25519KeyPair.generate().publicKey)]
        let session = try await alice.keys.loadSession(for: bobAddress)
        changes.sessions = [(carol, try XCTUnwrap(session))]
        changes.removedPreKeys = [1]
        changes.senderKeys = [(SenderKeyName(groupID: "g2@g.us", sender: carol), SenderKeyRecord())]
        changes.pendingPlaintexts = [(PendingPlaintextKey(stanza: "s1", part: "0.msg"), Data("secret".utf8))]
        try await alice.keys.commit(changes)
        let carolSession = try await alice.keys.hasSession(for: carol)
        XCTAssertTrue(carolSession)
        let carolIdentity = try await alice.keys.identity(for: carol)
        XCTAssertEqual(carolIdentity, changes.identities[0].1)
        let removed = try await alice.keys.loadPreKey(id: 1)
        XCTAssertNil(removed)
        let groupKey = try await alice.keys.loadSenderKey(for: SenderKeyName(groupID: "g2@g.us", sender: carol))
        XCTAssertNotNil(groupKey)
        let pending = try await alice.keys.loadPendingPlaintext(PendingPlaintextKey(stanza: "s1", part: "0.msg"))
        XCTAssertEqual(pending, Data("secret".utf8))

        // A changed identity is reported; deleting by name removes that user's sessions and identities only.
        let changed = try await alice.keys.saveIdentity(Curve25519KeyPair.generate().publicKey, for: carol)
        XCTAssertTrue(changed)
        let gone = try await alice.keys.deleteAllSessionsAndIdentities(named: "333")
        XCTAssertEqual(gone, [carol])
        let stillBob = try await alice.keys.hasSession(for: bobAddress)
        XCTAssertTrue(stillBob)
        let carolGone = try await alice.keys.identity(for: carol)
        XCTAssertNil(carolGone)

        // PN → LID move of sessions, identities and sender keys (resealed for the new address).
        let moved = try await alice.keys.migrateAddresses(fromName: "222", toName: "999_1")
        XCTAssertEqual(moved, 2)
        let movedSession = try await alice.keys.loadSession(for: SignalAddress(name: "999_1", deviceID: 0))
        XCTAssertNotNil(movedSession)
        let oldSession = try await alice.keys.hasSession(for: bobAddress)
        XCTAssertFalse(oldSession)
    }

    func checkLIDMappings() async throws {
        let store = try await store()
        let keys = try await device(store, "lid").keys
        let pn = try JID(parsing: "15551234567@s.whatsapp.net"), lid = try JID(parsing: "123456789@lid")
        try await keys.storeLIDMappings([try LIDMapping(lid, pn)])
        let foundLID = try await keys.lid(forPN: pn)
        XCTAssertEqual(foundLID, lid)
        let foundPN = try await keys.pn(forLID: lid)
        XCTAssertEqual(foundPN, pn)
        // A newer mapping of the same number replaces the old LID.
        let newLID = try JID(parsing: "987654321@lid")
        try await keys.storeLIDMappings([try LIDMapping(newLID, pn)])
        let replaced = try await keys.lid(forPN: pn)
        XCTAssertEqual(replaced, newLID)
        let oldGone = try await keys.pn(forLID: lid)
        XCTAssertNil(oldGone)
        let other = try JID(parsing: "15550000000@s.whatsapp.net")
        try await keys.storeLIDMappings([try LIDMapping(try JID(parsing: "555@lid"), other)])
        let many = try await keys.lids(forPNs: [pn, other, try JID(parsing: "1@s.whatsapp.net")])
        XCTAssertEqual(many, [pn.user: newLID, other.user: try JID(parsing: "555@lid")])
        let count = try await keys.lidMappingCount()
        XCTAssertEqual(count, 2)
    }

    func checkPrivacyTokens() async throws {
        let store = try await store()
        let keys = try await device(store, "privacy").keys
        let peer = try JID(parsing: "15551234567@s.whatsapp.net")
        let t = Date(timeIntervalSince1970: 1_800_000_000)
        try await keys.storePrivacyTokens([PrivacyToken(user: try JID(parsing: "15551234567:2@s.whatsapp.net"), token: Data([1, 2]), timestamp: t)])
        let read = try await keys.privacyToken(for: peer)
        XCTAssertEqual(read?.token, Data([1, 2]))
        XCTAssertEqual(read?.timestamp, t)
        XCTAssertNil(read?.senderTimestamp)
        try await keys.setPrivacyTokenSenderTimestamp(t.addingTimeInterval(60), for: peer)
        let stamped = try await keys.privacyToken(for: peer)
        XCTAssertEqual(stamped?.senderTimestamp, t.addingTimeInterval(60))
        XCTAssertEqual(stamped?.token, Data([1, 2]))
        let kept = try await keys.deleteExpiredPrivacyTokens(before: t.addingTimeInterval(30))
        XCTAssertEqual(kept, 0, "a sender timestamp after the cutoff keeps the token")
        let deleted = try await keys.deleteExpiredPrivacyTokens(before: t.addingTimeInterval(120))
        XCTAssertEqual(deleted, 1)
        let noSalt = try await keys.nctSalt()
        XCTAssertNil(noSalt)
        try await keys.storeNCTSalt(Data([9, 9]))
        let salt = try await keys.nctSalt()
        XCTAssertEqual(salt, Data([9, 9]))
        try await keys.storeNCTSalt(nil)
        let cleared = try await keys.nctSalt()
        XCTAssertNil(cleared)
    }

    func checkAppState() async throws {
        let store = try await store()
        let keys = try await device(store, "appstate").keys
        let keyID = Data([0, 1, 2])
        try await keys.storeAppStateSyncKeys([AppStateSyncKey(id: keyID, data: Data(repeating: 5, count: 32), fingerprint: Data([1]), timestamp: 42)])
        let syncKey = try await keys.appStateSyncKey(id: keyID)
        XCTAssertEqual(syncKey?.data, Data(repeating: 5, count: 32))
        XCTAssertEqual(syncKey?.timestamp, 42)
        let fresh = try await keys.appStateVersion("regular")
        XCTAssertEqual(fresh.version, 0)

        let bob = try JID(parsing: "15551234567@s.whatsapp.net"), carol = try JID(parsing: "15557654321@s.whatsapp.net")
        let until = Date(timeIntervalSince1970: 1_900_000_000)
        try await keys.commitAppState("regular", state: AppStateHashState(version: 3, hash: Data(repeating: 3, count: 128)), removed: [],
                                      added: [AppStateMutationMAC(indexMAC: Data([1]), valueMAC: Data([2]))],
                                      changes: [.contact(AppStateContact(jid: bob, fullName: "Bob B", firstName: "Bob")),
                                                .contact(AppStateContact(jid: carol, fullName: "Carol C", firstName: "Carol")),
                                                .pushName("Me"), .mute(bob, until: until), .pin(bob, true), .archive(carol, true)])
        let version = try await keys.appStateVersion("regular")
        XCTAssertEqual(version.version, 3)
        XCTAssertEqual(version.hash, Data(repeating: 3, count: 128))
        let mac = try await keys.appStateValueMAC("regular", indexMAC: Data([1]))
        XCTAssertEqual(mac, Data([2]))
        let contact = try await keys.appStateContact(bob)
        XCTAssertEqual(contact?.fullName, "Bob B")
        let contacts = try await keys.appStateContacts().map(\.firstName)
        XCTAssertEqual(contacts, ["Bob", "Carol"])
        let pushName = try await keys.appStateOwnPushName()
        XCTAssertEqual(pushName, "Me")
        let bobChat = try await keys.appStateChatSettings(bob)
        XCTAssertEqual(bobChat?.mutedUntil, until)
        XCTAssertEqual(bobChat?.pinned, true)
        XCTAssertEqual(bobChat?.archived, false)
        let carolChat = try await keys.appStateChatSettings(carol)
        XCTAssertEqual(carolChat?.archived, true)

        try await keys.commitAppState("regular", state: AppStateHashState(version: 4, hash: Data(repeating: 4, count: 128)),
                                      removed: [Data([1])], added: [], changes: [.contactRemoved(carol), .mute(bob, until: nil)])
        let macGone = try await keys.appStateValueMAC("regular", indexMAC: Data([1]))
        XCTAssertNil(macGone)
        let carolGone = try await keys.appStateContact(carol)
        XCTAssertNil(carolGone)
        let unmuted = try await keys.appStateChatSettings(bob)
        XCTAssertNil(unmuted?.mutedUntil)
        XCTAssertEqual(unmuted?.pinned, true, "a change of one setting keeps the others")
    }

    func checkPendingPlaintexts() async throws {
        let store = try await store()
        let keys = try await device(store, "pending").keys
        let base = Date().addingTimeInterval(-10)
        for index in 0..<5 {
            try await keys.storePendingPlaintext(Data([UInt8(index)]), for: PendingPlaintextKey(stanza: "s\(index)", part: "0.msg"))
        }
        try await keys.storePendingPlaintext(Data([7]), for: PendingPlaintextKey(stanza: "s0", part: "1.msg"))
        let loaded = try await keys.loadPendingPlaintext(PendingPlaintextKey(stanza: "s3", part: "0.msg"))
        XCTAssertEqual(loaded, Data([3]))
        try await keys.removePendingPlaintexts(stanza: "s0")
        let removed = try await keys.loadPendingPlaintext(PendingPlaintextKey(stanza: "s0", part: "1.msg"))
        XCTAssertNil(removed)
        let count = try await keys.pendingPlaintextCount()
        XCTAssertEqual(count, 4)
        // Keep the newest two (s3, s4); nothing is older than `base`.
        let pruned = try await keys.prunePendingPlaintexts(keepingNewest: 2, storedBefore: base)
        XCTAssertEqual(pruned, 2)
        let newest = try await keys.loadPendingPlaintext(PendingPlaintextKey(stanza: "s4", part: "0.msg"))
        XCTAssertEqual(newest, Data([4]))
        let oldest = try await keys.loadPendingPlaintext(PendingPlaintextKey(stanza: "s1", part: "0.msg"))
        XCTAssertNil(oldest)
        let all = try await keys.prunePendingPlaintexts(keepingNewest: 10, storedBefore: Date().addingTimeInterval(10))
        XCTAssertEqual(all, 2)
    }

    // MARK: Data

    func checkHistoryAndHistorySyncBounds() async throws {
        let store = try await store()
        let data = try await device(store, "history").data
        let chat = "15551234567@s.whatsapp.net"
        for i in 0..<5 {
            try await data.saveMessage(HistoryMessage(id: "m\(i)", chat: chat, sender: chat, direction: .incoming, timestamp: Int64(100 + i),
                                                      kind: "text", status: "received", body: #"{"text":"\#(i)"}"#))
        }
        let updated = try await data.updateMessageStatus(chat: chat, id: "m1", status: "read")
        XCTAssertTrue(updated)
        let missing = try await data.updateMessageStatus(chat: chat, id: "nope", status: "read")
        XCTAssertFalse(missing)
        let one = try await data.message(chat: chat, id: "m1")
        XCTAssertEqual(one?.status, "read")
        XCTAssertEqual(one?.body, #"{"text":"1"}"#)
        let newest = try await data.messages(chat: chat, limit: 3).map(\.id)
        XCTAssertEqual(newest, ["m2", "m3", "m4"], "the newest, oldest first")

        // History sync: a live copy wins; the bounds keep the newest historical ones.
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let day: TimeInterval = 86_400
        let old = Int64(now.timeIntervalSince1970 - 10 * day)
        let recent = Int64(now.timeIntervalSince1970 - day)
        var synced = [HistoryMessage(id: "m0", chat: chat, sender: chat, direction: .incoming, timestamp: 1, kind: "text", status: "x")]
        synced += (0..<4).map { HistoryMessage(id: "h\($0)", chat: chat, sender: chat, direction: .incoming, timestamp: recent + Int64($0),
                                               kind: "text", status: "received") }
        synced.append(HistoryMessage(id: "ancient", chat: chat, sender: chat, direction: .incoming, timestamp: old, kind: "text", status: "received"))
        let stored = try await data.saveHistorySync(
            conversations: [HistoryConversationRecord(chat: chat, name: "Bob", lastMessageAt: recent, unreadCount: 2, updatedAt: now),
                            HistoryConversationRecord(chat: "g@g.us", lastMessageAt: nil, updatedAt: now)],
            messages: synced, pushNames: [PushNameRecord(jid: chat, name: "Bobby", updatedAt: now)],
            bounds: HistoryBounds(maxAge: 7 * day, maxMessages: 3), now: now)
        XCTAssertEqual(stored.conversations, 2)
        XCTAssertEqual(stored.pushNames, 1)
        XCTAssertEqual(stored.pruned, 2, "the ancient one by age, h0 by count")
        XCTAssertEqual(stored.messages, 3)
        let live = try await data.message(chat: chat, id: "m0")
        XCTAssertEqual(live?.status, "received", "the live copy is kept")
        let historical = try await data.historicalMessageCount()
        XCTAssertEqual(historical, 3)
        let h0 = try await data.message(chat: chat, id: "h0")
        XCTAssertNil(h0)
        let conversations = try await data.conversations().map(\.chat)
        XCTAssertEqual(conversations, [chat, "g@g.us"])
        let bobConversation = try await data.conversations(limit: 1).first
        XCTAssertEqual(bobConversation?.name, "Bob")
        XCTAssertEqual(bobConversation?.unreadCount, 2)
        let pushName = try await data.pushName(for: chat)
        XCTAssertEqual(pushName, "Bobby")
    }

    func checkOutbox() async throws {
        let store = try await store()
        let data = try await device(store, "outbox").data
        let t = Date(timeIntervalSince1970: 1_800_000_000)
        let a = try await data.appendEvent(eventID: "e1", routingKey: "d.message.received", payload: Data([1]), now: t)
        XCTAssertNotNil(a.sequence)
        let again = try await data.appendEvent(eventID: "e1", routingKey: "other", payload: Data([9]), now: t)
        XCTAssertEqual(again, a, "an id already in the outbox returns its row")
        let batch = try await data.appendEvents([
            NewOutboxEvent(eventID: "e2", routingKey: "k2", payload: Data([2]), createdAt: t),
            NewOutboxEvent(eventID: "e3", routingKey: "k3", payload: Data([3]), createdAt: t),
        ])
        XCTAssertEqual(batch.map(\.eventID), ["e2", "e3"])
        let peeked = try await data.peekEvents()
        XCTAssertEqual(peeked.map(\.eventID), ["e1", "e2", "e3"])
        XCTAssertEqual(peeked.map(\.payload), [Data([1]), Data([2]), Data([3])])
        XCTAssertEqual(peeked[0].createdAt.timeIntervalSince1970, t.timeIntervalSince1970, accuracy: 0.001)
        let first = try await data.peekEvents(limit: 1).map(\.eventID)
        XCTAssertEqual(first, ["e1"])
        let unpublished = try await data.isPublished(eventID: "e1")
        XCTAssertFalse(unpublished)
        let deleted = try await data.deleteEvents(sequences: peeked.prefix(2).compactMap(\.sequence))
        XCTAssertEqual(deleted, 2)
        let published = try await data.isPublished(eventID: "e1")
        XCTAssertTrue(published)
        let count = try await data.outboxCount()
        XCTAssertEqual(count, 1)
        // A fact recorded again after it was published is not appended.
        let repeated = try await data.appendEvent(eventID: "e2", routingKey: "k2", payload: Data([2]), now: t)
        XCTAssertNil(repeated.sequence)
        let still = try await data.outboxCount()
        XCTAssertEqual(still, 1)
    }

    func checkIdempotencyRecords() async throws {
        let store = try await store()
        let data = try await device(store, "idem").data
        let t = Date(timeIntervalSince1970: 1_800_000_000)
        let first = try await data.recordCommandResult(commandID: "c1", messageID: "M1", result: #"{"ok":1}"#, correlationID: "corr", now: t)
        XCTAssertTrue(first.inserted)
        let repeatCall = try await data.recordCommandResult(commandID: "c1", messageID: "M2", result: #"{"ok":2}"#, correlationID: nil, now: t)
        XCTAssertFalse(repeatCall.inserted)
        XCTAssertEqual(repeatCall.record.result, #"{"ok":1}"#, "the first answer is kept")
        XCTAssertEqual(repeatCall.record.correlationID, "corr")
        let batch = try await data.recordCommandResults([
            IdempotencyRecord(commandID: "c2", messageID: nil, result: "{}", createdAt: t),
            IdempotencyRecord(commandID: "c1", messageID: nil, result: "{}", createdAt: t),
        ])
        XCTAssertEqual(batch.map(\.inserted), [true, false])
        let bySend = try await data.command(forMessageID: "M1")
        XCTAssertEqual(bySend?.commandID, "c1")
        let none = try await data.command(forMessageID: "M9")
        XCTAssertNil(none)
        let results = try await data.commandResults(["c1", "c2", "c3"])
        XCTAssertEqual(Set(results.keys), ["c1", "c2"])
        let single = try await data.commandResult("c2")
        XCTAssertEqual(single?.result, "{}")
        XCTAssertEqual(single?.createdAt.timeIntervalSince1970 ?? 0, t.timeIntervalSince1970, accuracy: 0.001)
    }

    // MARK: Isolation

    func checkIsolation() async throws {
        let store = try await store()
        let a = try await device(store, "iso-a")
        let b = try await store.createDevice(id: DeviceID("iso-b")).id
        let bHandles = try await store.device(b)
        let peer = SignalAddress(name: "777", deviceID: 0)
        let chat = "c@s.whatsapp.net"
        // Everything on a…
        try await a.keys.saveIdentity(Curve25519KeyPair.generate().publicKey, for: peer)
        try await a.keys.storeSenderKey(SenderKeyRecord(), for: SenderKeyName(groupID: "g@g.us", sender: peer))
        try await a.keys.storeLIDMappings([try LIDMapping(try JID(parsing: "1@lid"), try JID(parsing: "2@s.whatsapp.net"))])
        try await a.keys.storePrivacyTokens([PrivacyToken(user: try JID(parsing: "2@s.whatsapp.net"), token: Data([1]), timestamp: Date())])
        try await a.keys.storePendingPlaintext(Data([1]), for: PendingPlaintextKey(stanza: "s", part: "p"))
        try await a.keys.commitAppState("regular", state: AppStateHashState(version: 1, hash: Data([1])), removed: [],
                                        added: [], changes: [.pushName("A")])
        try await a.data.saveMessage(HistoryMessage(id: "M1", chat: chat, sender: chat, direction: .incoming, timestamp: 1, kind: "text", status: "x"))
        try await a.data.appendEvent(eventID: "ev", routingKey: "k", payload: Data())
        _ = try await a.data.recordCommandResult(commandID: "cmd", messageID: "M1", result: "{}")
        // …and none of it through b's handles.
        let bKeys = bHandles.keys, bData = bHandles.data
        let checks: [Bool] = [
            try await bKeys.loadDevice() == nil,
            try await bKeys.preKeyCount() == 0,
            try await bKeys.identity(for: peer) == nil,
            try await bKeys.loadSenderKey(for: SenderKeyName(groupID: "g@g.us", sender: peer)) == nil,
            try await bKeys.lidMappingCount() == 0,
            try await bKeys.privacyToken(for: try JID(parsing: "2@s.whatsapp.net")) == nil,
            try await bKeys.pendingPlaintextCount() == 0,
            try await bKeys.appStateOwnPushName() == nil,
            try await bKeys.appStateVersion("regular").version == 0,
            try await bData.message(chat: chat, id: "M1") == nil,
            try await bData.outboxCount() == 0,
            try await bData.commandResult("cmd") == nil,
            try await bData.command(forMessageID: "M1") == nil,
        ]
        XCTAssertEqual(checks, Array(repeating: true, count: checks.count))
        // b's writes and wipe leave a whole; deleting b leaves a whole.
        try await bKeys.saveDevice(DeviceRecord.generate())
        try await bKeys.wipe()
        try await bKeys.deleteAllSessionsAndIdentities(named: "777")
        try await bData.deleteEvents(sequences: try await a.data.peekEvents().compactMap(\.sequence))
        try await store.deleteDevice(b)
        let aKeys = try await a.keys.loadDevice()
        XCTAssertNotNil(aKeys)
        let aIdentity = try await a.keys.identity(for: peer)
        XCTAssertNotNil(aIdentity)
        let aOutbox = try await a.data.outboxCount()
        XCTAssertEqual(aOutbox, 1)
        let aPush = try await a.keys.appStateOwnPushName()
        XCTAssertEqual(aPush, "A")
    }

    // MARK: Fencing

    func checkFencing() async throws {
        let store = try await store()
        let id = try await store.createDevice(id: DeviceID("fenced")).id
        let old = try await store.device(id, generation: 1).keys
        let record = DeviceRecord.generate()
        try await old.saveDevice(record)  // generation 1, fence 0: ok
        try await store.raiseFence(id, to: 2)
        let fence = try await store.fence(id)
        XCTAssertEqual(fence, 2)
        try await store.raiseFence(id, to: 1)  // never lowered
        let stillTwo = try await store.fence(id)
        XCTAssertEqual(stillTwo, 2)

        await assertStoreError(.fenced) { try await old.saveDevice(DeviceRecord.generate()) }
        await assertStoreError(.fenced) { try await old.storePreKeys(KeyHelper.generatePreKeys(start: 1, count: 2)) }
        await assertStoreError(.fenced) { try await old.storeSession(SessionRecord(), for: SignalAddress(name: "1", deviceID: 0)) }
        await assertStoreError(.fenced) { try await old.wipe() }
        let unchanged = try await store.device(id).keys.loadDevice()
        XCTAssertEqual(unchanged?.identityKey.privateKey.rawRepresentation, record.identityKey.privateKey.rawRepresentation,
                       "a refused write changes nothing")
        let noPreKeys = try await store.device(id).keys.preKeyCount()
        XCTAssertEqual(noPreKeys, 0)

        let current = try await store.device(id, generation: 2).keys
        let next = DeviceRecord.generate()
        try await current.saveDevice(next)
        let saved = try await current.loadDevice()
        XCTAssertEqual(saved?.identityKey.privateKey.rawRepresentation, next.identityKey.privateKey.rawRepresentation)
        // Reads through the fenced handle still work (the old owner can shut down cleanly).
        let read = try await old.loadDevice()
        XCTAssertNotNil(read)
    }
}
