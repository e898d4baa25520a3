import Foundation
import GRDB
import WAClient
import WASignal
import XCTest
@testable import BridgeStore

final class EncryptionTests: XCTestCase {
    /// Saves keys and runs a session, closes everything, returns the raw session file bytes and the secrets.
    private func secretsOnDisk(masterKey: MasterKey?) async throws -> (bytes: Data, secrets: [Data]) {
        let dir = try makeTemporaryDirectory(self)
        let store = try openStore(dir, masterKey: masterKey)
        let alice = try await SignalDevice.make(store, id: "alice", user: "15550000001")
        let bob = try await SignalDevice.make(store, id: "bob", user: "15550000002")
        try await SessionBuilder(store: alice.storage.keys, address: bob.address).process(bundle: try await bob.bundle(preKeyID: 1))
        _ = try await bob.receive(try await alice.send("x", to: bob), from: alice)
        let record = try await alice.storage.keys.loadDevice()!
        let preKey = try await alice.storage.keys.loadPreKey(id: 4)!
        store.closeAll()
        let bytes = try rawBytes(of: alice.storage.folder.appendingPathComponent("session.sqlite"))
        return (bytes, [
            record.identityKey.privateKey.rawRepresentation, record.noiseKey.privateKey.rawRepresentation,
            record.signedPreKey.keyPair.privateKey.rawRepresentation, record.advSecret,
            preKey.keyPair.privateKey.rawRepresentation,
        ])
    }

    func testRawFileHoldsNoPrivateKeyWhenEncrypted() async throws {
        let plain = try await secretsOnDisk(masterKey: nil)
        // Control: without a master key the secrets are on disk as they are.
        XCTAssertNotNil(plain.bytes.range(of: plain.secrets[0]), "the check would see a plaintext key")
        let sealed = try await secretsOnDisk(masterKey: MasterKey.generate())
        for (i, secret) in sealed.secrets.enumerated() {
            XCTAssertNil(sealed.bytes.range(of: secret), "secret \(i) found in the raw file")
        }
    }

    func testTwoDevicesSealTheSameKeyDifferently() async throws {
        let dir = try makeTemporaryDirectory(self)
        let store = try openStore(dir, masterKey: MasterKey.generate())
        let record = DeviceRecord.generate()
        var blobs: [Data] = []
        for name in ["one", "two"] {
            let device = try await store.device(try await store.createDevice(id: try DeviceID(name)).id)
            try await device.keys.saveDevice(record)
            let loaded = try await device.keys.loadDevice()
            XCTAssertEqual(loaded?.identityKey.publicKey, record.identityKey.publicKey)
            let raw = try DatabaseQueue(path: device.folder.appendingPathComponent("session.sqlite").path)
            blobs.append(try await raw.read { db in
                try Data.fetchOne(db, sql: "SELECT identityKeyBlob FROM account")!
            })
            try raw.close()
        }
        XCTAssertNotEqual(blobs[0], blobs[1])
        XCTAssertEqual(blobs[0].count, 1 + 12 + 32 + 16, "tag, nonce, ciphertext, GCM tag")
    }

    func testWrongOrMissingMasterKeyFailsWithItsCode() async throws {
        let dir = try makeTemporaryDirectory(self)
        let key = MasterKey.generate()
        let id = try DeviceID("locked")
        do {
            let store = try openStore(dir, masterKey: key)
            let device = try await store.device(try await store.createDevice(id: id).id)
            try await device.keys.saveDevice(DeviceRecord.generate())
            store.closeAll()
        }
        let wrong = try openStore(dir, masterKey: MasterKey.generate())
        await assertStoreError(.wrongMasterKey) { try await wrong.device(id) }
        wrong.closeAll()
        let none = try openStore(dir)
        await assertStoreError(.wrongMasterKey) { try await none.device(id) }
        none.closeAll()
        // Still fine with the right key.
        let right = try openStore(dir, masterKey: key)
        let record = try await right.device(id).keys.loadDevice()
        XCTAssertNotNil(record)
        // A device created without encryption refuses a master key added later.
        let plainID = try DeviceID("plain")
        right.closeAll()
        let plainStore = try openStore(dir)
        try await plainStore.createDevice(id: plainID)
        plainStore.closeAll()
        let keyed = try openStore(dir, masterKey: key)
        await assertStoreError(.encryptionMismatch) { try await keyed.device(plainID) }
    }

    /// `WABRIDGE_SQLITE_OPEN_DATABASES` sets how many device databases stay open; out of range is refused.
    func testOpenDatabaseCountFromEnvironment() async throws {
        let dir = try makeTemporaryDirectory(self)
        let defaults = try BridgeStore.Configuration.fromEnvironment(dataDirectory: dir, environment: [:])
        XCTAssertEqual(defaults.maxOpenDatabases, BridgeStore.Configuration.defaultOpenDatabases())
        XCTAssert((8...64).contains(defaults.maxOpenDatabases))
        let set = try BridgeStore.Configuration.fromEnvironment(dataDirectory: dir, environment: ["WABRIDGE_SQLITE_OPEN_DATABASES": "500"])
        XCTAssertEqual(set.maxOpenDatabases, 500)
        for bad in ["7", "65537", "many"] {
            await assertStoreError(.invalidConfiguration) {
                try BridgeStore.Configuration.fromEnvironment(dataDirectory: dir, environment: ["WABRIDGE_SQLITE_OPEN_DATABASES": bad])
            }
        }
    }

    func testMasterKeyFromEnvironmentAndFile() async throws {
        let dir = try makeTemporaryDirectory(self)
        let bytes = Data((0..<32).map { UInt8($0) })
        XCTAssertNil(try MasterKey.fromEnvironment([:]))
        let fromEnv = try MasterKey.fromEnvironment(["WABRIDGE_MASTER_KEY": bytes.base64EncodedString()])
        XCTAssertNotNil(fromEnv)
        let rawFile = dir.appendingPathComponent("raw.key")
        try bytes.write(to: rawFile)
        let base64File = dir.appendingPathComponent("b64.key")
        try Data((bytes.base64EncodedString() + "\n").utf8).write(to: base64File)
        let id = try DeviceID("d")
        let a = try XCTUnwrap(try MasterKey.fromEnvironment(["WABRIDGE_MASTER_KEY_FILE": rawFile.path]))
        let b = try XCTUnwrap(try MasterKey.fromEnvironment(["WABRIDGE_MASTER_KEY_FILE": base64File.path, "WABRIDGE_MASTER_KEY": "ignored"]))
        // The same key, whatever its spelling: sealed by one, opened by the other.
        let sealed = try KeyCipher(key: a.deviceKey(for: id)).seal(Data("secret".utf8), context: "t")
        XCTAssertEqual(try KeyCipher(key: b.deviceKey(for: id)).open(sealed, context: "t"), Data("secret".utf8))
        XCTAssertEqual(try KeyCipher(key: fromEnv!.deviceKey(for: id)).open(sealed, context: "t"), Data("secret".utf8))
        await assertStoreError(.wrongMasterKey) { try KeyCipher(key: a.deviceKey(for: id)).open(sealed, context: "other row") }
        await assertStoreError(.invalidMasterKey) { try MasterKey.fromEnvironment(["WABRIDGE_MASTER_KEY": "c2hvcnQ="]) }
        await assertStoreError(.invalidMasterKey) { try MasterKey.fromEnvironment(["WABRIDGE_MASTER_KEY": "not base64!"]) }
        await assertStoreError(.invalidMasterKey) {
            try MasterKey.fromEnvironment(["WABRIDGE_MASTER_KEY_FILE": dir.appendingPathComponent("missing").path])
        }
        let configuration = try BridgeStore.Configuration.fromEnvironment(
            dataDirectory: dir, environment: ["WABRIDGE_MASTER_KEY": bytes.base64EncodedString()])
        XCTAssertNotNil(configuration.masterKey)
        XCTAssertNil(try BridgeStore.Configuration.fromEnvironment(dataDirectory: dir, environment: [:]).masterKey)
        XCTAssertEqual("\(a)", "MasterKey(redacted)")
        XCTAssertFalse(String(reflecting: a).contains(bytes.base64EncodedString()))
    }
}
