import Foundation
import GRDB
import WAClient
import WACrypto
import WASignal
import XCTest
@testable import BridgeStore

/// A temporary data folder, removed when the test ends.
func makeTemporaryDirectory(_ test: XCTestCase) throws -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("bridgestore-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}

func openStore(_ dir: URL, masterKey: MasterKey? = nil, maxOpen: Int = 64) throws -> BridgeStore {
    try BridgeStore(configuration: .init(
        dataDirectory: dir.appendingPathComponent("data"), masterKey: masterKey, maxOpenDatabases: maxOpen))
}

/// The permission bits of a path, read with stat(2).
func mode(of url: URL) throws -> mode_t {
    var info = stat()
    guard stat(url.path, &info) == 0 else { throw StoreError(.io, "stat \(url.path) failed") }
    return info.st_mode & 0o777
}

/// Every byte of a database file and its WAL, as they are on disk.
func rawBytes(of database: URL) throws -> Data {
    var data = try Data(contentsOf: database)
    let wal = URL(fileURLWithPath: database.path + "-wal")
    if FileManager.default.fileExists(atPath: wal.path) { data += try Data(contentsOf: wal) }
    return data
}

/// Asserts that `body` throws a `StoreError` with `code`.
func assertStoreError<T>(
    _ code: StoreError.Code, file: StaticString = #filePath, line: UInt = #line, _ body: () async throws -> T
) async {
    do {
        _ = try await body()
        XCTFail("expected \(code), got success", file: file, line: line)
    } catch let error as StoreError {
        XCTAssertEqual(error.code, code, "\(error)", file: file, line: line)
    } catch {
        XCTFail("expected \(code), got \(error)", file: file, line: line)
    }
}

/// A device with fresh keys and prekeys in its SQLite store, and the bundle a peer needs.
struct SignalDevice {
    let storage: DeviceStorage
    let address: SignalAddress

    static func make(_ store: BridgeStore, id: String, user: String, preKeys: Int = 5) async throws -> SignalDevice {
        let device = try await store.createDevice(id: try DeviceID(id))
        let storage = try await store.device(device.id)
        try await storage.keys.saveDevice(DeviceRecord.generate())
        try await storage.keys.storePreKeys(KeyHelper.generatePreKeys(start: 1, count: preKeys))
        return SignalDevice(storage: storage, address: SignalAddress(name: user, deviceID: 0))
    }

    static func reopen(_ store: BridgeStore, id: String, user: String) async throws -> SignalDevice {
        SignalDevice(storage: try await store.device(try DeviceID(id)), address: SignalAddress(name: user, deviceID: 0))
    }

    func bundle(preKeyID: UInt32) async throws -> PreKeyBundle {
        let record = try await storage.keys.loadDevice()!
        let preKey = try await storage.keys.loadPreKey(id: preKeyID)!
        return PreKeyBundle(
            registrationID: record.registrationID, deviceID: address.deviceID,
            preKeyID: preKeyID, preKey: preKey.keyPair.publicKey,
            signedPreKeyID: record.signedPreKey.id, signedPreKey: record.signedPreKey.keyPair.publicKey,
            signedPreKeySignature: record.signedPreKey.signature, identityKey: record.identityKey.publicKey)
    }

    func cipher(with peer: SignalAddress) -> SessionCipher { SessionCipher(store: storage.keys, address: peer) }

    func send(_ text: String, to peer: SignalDevice) async throws -> CiphertextMessage {
        try await cipher(with: peer.address).encrypt(Data(text.utf8))
    }

    func receive(_ message: CiphertextMessage, from peer: SignalDevice) async throws -> String {
        String(decoding: try await cipher(with: peer.address).decrypt(message), as: UTF8.self)
    }
}
