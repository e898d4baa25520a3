import Foundation
import GRDB
import WABinary
import WAClient
import WACrypto
import WAProto
import WASignal
import XCTest
@testable import BridgeStore

final class SessionStoreTests: XCTestCase {
    func testDeviceRecordRoundTrip() async throws {
        let dir = try makeTemporaryDirectory(self)
        var store = try openStore(dir)
        let id = try DeviceID("rt")
        try await store.createDevice(id: id)
        var keys = try await store.device(id).keys
        // The client takes it as its device store and as its Signal store.
        let _: any DeviceStore = keys
        let _: any SignalProtocolStore = keys
        let empty = try await keys.loadDevice()
        XCTAssertNil(empty)
        await assertStoreError(.notFound) { try await keys.identityKeyPair() }

        var record = DeviceRecord.generate()
        var account = WAAdv_ADVSignedDeviceIdentity()
        account.details = Data([1, 2, 3])
        account.accountSignatureKey = Data(repeating: 7, count: 32)
        account.accountSignature = Data(repeating: 8, count: 64)
        account.deviceSignature = Data(repeating: 9, count: 64)
        record.account = account
        record.jid = try JID(parsing: "15551234567:3@s.whatsapp.net")
        record.lid = try JID(parsing: "123456789:3@lid")
        record.pushName = "Sales"
        record.platform = "android"
        record.businessName = "ACME"
        try await keys.saveDevice(record)

        store.closeAll()
        store = try openStore(dir)
        keys = try await store.device(id).keys
        let back = try await keys.loadDevice()
        let loaded = try XCTUnwrap(back)
        XCTAssertEqual(loaded.noiseKey.privateKey.rawRepresentation, record.noiseKey.privateKey.rawRepresentation)
        XCTAssertEqual(loaded.noiseKey.publicKey, record.noiseKey.publicKey)
        XCTAssertEqual(loaded.identityKey.privateKey.rawRepresentation, record.identityKey.privateKey.rawRepresentation)
        XCTAssertEqual(loaded.registrationID, record.registrationID)
        XCTAssertEqual(loaded.signedPreKey.id, record.signedPreKey.id)
        XCTAssertEqual(loaded.signedPreKey.keyPair.publicKey, record.signedPreKey.keyPair.publicKey)
        XCTAssertEqual(loaded.signedPreKey.signature, record.signedPreKey.signature)
        XCTAssertEqual(loaded.advSecret, record.advSecret)
        XCTAssertEqual(loaded.account, account)
        XCTAssertEqual(loaded.jid, record.jid)
        XCTAssertEqual(loaded.lid, record.lid)
        XCTAssertEqual(loaded.pushName, "Sales")
        XCTAssertEqual(loaded.platform, "android")
        XCTAssertEqual(loaded.businessName, "ACME")
        XCTAssertTrue(loaded.isRegistered)
        let identity = try await keys.identityKeyPair()
        XCTAssertEqual(identity.publicKey, record.identityKey.publicKey)
        let registrationID = try await keys.localRegistrationID()
        XCTAssertEqual(registrationID, record.registrationID)
        // The device record's signed prekey is what Signal finds under its id.
        let signed = try await keys.loadSignedPreKey(id: record.signedPreKey.id)
        XCTAssertEqual(signed?.keyPair.publicKey, record.signedPreKey.keyPair.publicKey)
        let missingSigned = try await keys.loadSignedPreKey(id: 999)
        XCTAssertNil(missingSigned)
    }

    func testSignalStoresRoundTrip() async throws {
        let dir = try makeTemporaryDirectory(self)
        let store = try openStore(dir)
        let alice = try await SignalDevice.make(store, id: "alice", user: "15550000001")
        let keys = alice.storage.keys
        let count = try await keys.preKeyCount()
        XCTAssertEqual(count, 5)
        let maxID = try await keys.maxPreKeyID()
        XCTAssertEqual(maxID, 5)
        try await keys.removePreKey(id: 2)
        let gone = try await keys.loadPreKey(id: 2)
        XCTAssertNil(gone)

        let signed = try SignedPreKeyRecord.generate(id: 42, identity: try await keys.identityKeyPair(), timestamp: 1234)
        try await keys.storeSignedPreKey(signed)
        let signedBack = try await keys.loadSignedPreKey(id: 42)
        XCTAssertEqual(signedBack?.serialized(), signed.serialized())

        let peer = SignalAddress(name: "15559999999", deviceID: 2)
        let firstKey = Curve25519KeyPair.generate().publicKey
        let secondKey = Curve25519KeyPair.generate().publicKey
        let trustedUnknown = try await keys.isTrustedIdentity(firstKey, for: peer, direction: .receiving)
        XCTAssertTrue(trustedUnknown)
        let replacedFirst = try await keys.saveIdentity(firstKey, for: peer)
        XCTAssertFalse(replacedFirst)
        let trustedSecond = try await keys.isTrustedIdentity(secondKey, for: peer, direction: .sending)
        XCTAssertFalse(trustedSecond)
        let replaced = try await keys.saveIdentity(secondKey, for: peer)
        XCTAssertTrue(replaced)
        let stored = try await keys.identity(for: peer)
        XCTAssertEqual(stored, secondKey)

        let name = SenderKeyName(groupID: "120363000000000000@g.us", sender: peer)
        let senderRecord = SenderKeyRecord()
        try await keys.storeSenderKey(senderRecord, for: name)
        let senderBack = try await keys.loadSenderKey(for: name)
        XCTAssertEqual(senderBack, senderRecord)
        let otherSender = try await keys.loadSenderKey(for: SenderKeyName(groupID: name.groupID, sender: SignalAddress(name: "x", deviceID: 1)))
        XCTAssertNil(otherSender)

        try await keys.storeSession(SessionRecord(), for: peer)
        let has = try await keys.hasSession(for: peer)
        XCTAssertTrue(has)
        try await keys.deleteSession(for: peer)
        let session = try await keys.loadSession(for: peer)
        XCTAssertNil(session)
    }

    /// A real Signal conversation between two devices, each on its own SQLite
    /// store; everything closed and reopened from disk in the middle.
    func testConversationSurvivesReopenFromDisk() async throws {
        let dir = try makeTemporaryDirectory(self)
        var store = try openStore(dir, masterKey: MasterKey.generate())
        let masterKey = store.configuration.masterKey
        var alice = try await SignalDevice.make(store, id: "alice", user: "15550000001")
        var bob = try await SignalDevice.make(store, id: "bob", user: "15550000002")

        try await SessionBuilder(store: alice.storage.keys, address: bob.address).process(bundle: try await bob.bundle(preKeyID: 3))
        let first = try await alice.send("hello bob", to: bob)
        guard case .preKey = first else { return XCTFail("the first message carries the prekey") }
        let opened = try await bob.receive(first, from: alice)
        XCTAssertEqual(opened, "hello bob")
        let usedPreKey = try await bob.storage.keys.loadPreKey(id: 3)
        XCTAssertNil(usedPreKey, "the one-time prekey is removed in the decrypt's commit")
        let reply = try await bob.send("hi alice", to: alice)
        let replyText = try await alice.receive(reply, from: bob)
        XCTAssertEqual(replyText, "hi alice")
        // One message in flight across the restart.
        let inFlight = try await alice.send("in flight", to: bob)

        store.closeAll()
        store = try openStore(dir, masterKey: masterKey)
        alice = try await SignalDevice.reopen(store, id: "alice", user: "15550000001")
        bob = try await SignalDevice.reopen(store, id: "bob", user: "15550000002")
        let inFlightText = try await bob.receive(inFlight, from: alice)
        XCTAssertEqual(inFlightText, "in flight")
        for i in 0..<4 {
            let out = try await alice.send("a\(i)", to: bob)
            let outText = try await bob.receive(out, from: alice)
            XCTAssertEqual(outText, "a\(i)")
            let back = try await bob.send("b\(i)", to: alice)
            let backText = try await alice.receive(back, from: bob)
            XCTAssertEqual(backText, "b\(i)")
        }
        let aliceIdentityAtBob = try await bob.storage.keys.identity(for: alice.address)
        let aliceIdentity = try await alice.storage.keys.identityKeyPair().publicKey
        XCTAssertEqual(aliceIdentityAtBob, aliceIdentity)
    }

    /// `commit` is one transaction: when one change fails, none is stored.
    func testCommitIsAtomic() async throws {
        let dir = try makeTemporaryDirectory(self)
        let store = try openStore(dir)
        let device = try await SignalDevice.make(store, id: "atomic", user: "15550000003")
        let keys = device.storage.keys
        let peer = SignalAddress(name: "15551112222", deviceID: 1)
        let name = SenderKeyName(groupID: "g@g.us", sender: peer)

        var changes = SignalStoreChanges()
        changes.identities = [(peer, Curve25519KeyPair.generate().publicKey)]
        changes.sessions = [(peer, SessionRecord())]
        changes.removedPreKeys = [1, 2]
        changes.senderKeys = [(name, SenderKeyRecord())]

        // Make the last write of the transaction fail, from another connection on the real file.
        let sessionFile = device.storage.folder.appendingPathComponent("session.sqlite")
        let saboteur = try DatabaseQueue(path: sessionFile.path)
        try await saboteur.write { db in
            try db.execute(sql: "CREATE TRIGGER refuse BEFORE INSERT ON senderKey BEGIN SELECT RAISE(ABORT, 'refused'); END")
        }
        await assertStoreError(.database) { try await keys.commit(changes) }
        let identity = try await keys.identity(for: peer)
        XCTAssertNil(identity)
        let session = try await keys.loadSession(for: peer)
        XCTAssertNil(session)
        let preKeys = try await keys.preKeyCount()
        XCTAssertEqual(preKeys, 5)
        let senderKey = try await keys.loadSenderKey(for: name)
        XCTAssertNil(senderKey)

        try await saboteur.write { db in try db.execute(sql: "DROP TRIGGER refuse") }
        try saboteur.close()
        try await keys.commit(changes)
        let identityAfter = try await keys.identity(for: peer)
        XCTAssertNotNil(identityAfter)
        let sessionAfter = try await keys.loadSession(for: peer)
        XCTAssertNotNil(sessionAfter)
        let preKeysAfter = try await keys.preKeyCount()
        XCTAssertEqual(preKeysAfter, 3)
        let senderKeyAfter = try await keys.loadSenderKey(for: name)
        XCTAssertNotNil(senderKeyAfter)
    }

    func testWipeRemovesKeysAndKeepsTheSlot() async throws {
        let dir = try makeTemporaryDirectory(self)
        let store = try openStore(dir)
        let alice = try await SignalDevice.make(store, id: "alice", user: "15550000001")
        let bob = try await SignalDevice.make(store, id: "bob", user: "15550000002")
        try await SessionBuilder(store: alice.storage.keys, address: bob.address).process(bundle: try await bob.bundle(preKeyID: 1))
        _ = try await bob.receive(try await alice.send("x", to: bob), from: alice)
        try await alice.storage.data.appendEvent(eventID: "e1", routingKey: "alice.logged_out", payload: Data("{}".utf8))
        let record = try await alice.storage.keys.loadDevice()!
        try await store.registry.updateState(alice.storage.id, to: .loggedOut)

        try await alice.storage.keys.wipe()

        let afterWipe = try await alice.storage.keys.loadDevice()
        XCTAssertNil(afterWipe)
        let preKeys = try await alice.storage.keys.preKeyCount()
        XCTAssertEqual(preKeys, 0)
        let session = try await alice.storage.keys.loadSession(for: bob.address)
        XCTAssertNil(session)
        let identity = try await alice.storage.keys.identity(for: bob.address)
        XCTAssertNil(identity)
        // The slot stays: registry row, folder, history and outbox.
        let v5 = try await store.registry.device(alice.storage.id).state
        XCTAssertEqual(v5, .loggedOut)
        XCTAssertTrue(FileManager.default.fileExists(atPath: alice.storage.mediaDirectory.path))
        let outbox = try await alice.storage.data.outboxCount()
        XCTAssertEqual(outbox, 1)
        // Bob is untouched.
        let bobSession = try await bob.storage.keys.loadSession(for: alice.address)
        XCTAssertNotNil(bobSession)
        // No private key is left in the file (secure_delete + WAL truncated).
        store.closeAll()
        let bytes = try rawBytes(of: alice.storage.folder.appendingPathComponent("session.sqlite"))
        XCTAssertNil(bytes.range(of: record.identityKey.privateKey.rawRepresentation))
        XCTAssertNil(bytes.range(of: record.noiseKey.privateKey.rawRepresentation))
        // A new login can save fresh keys into the same slot.
        try await alice.storage.keys.saveDevice(DeviceRecord.generate())
        let fresh = try await alice.storage.keys.loadDevice()
        XCTAssertNotNil(fresh)
    }
}
