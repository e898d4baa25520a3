import Foundation
import XCTest
@testable import BridgeStore

final class RegistryTests: XCTestCase {
    func testDeviceIDValidation() async throws {
        for valid in ["a", "sales-1", "A_b-9", "0", String(repeating: "x", count: 64), "0f6c2a1e-7d1b-4b8e-9a55-3a4c2f1e0b9d"] {
            XCTAssertEqual(try DeviceID(valid).rawValue, valid)
        }
        for invalid in ["", "-abc", "_abc", "a b", "a/b", "..", ".", "a.b", "sales-1\n", "é", "a@b",
                        String(repeating: "x", count: 65), "../etc"] {
            await assertStoreError(.invalidDeviceID) { try DeviceID(invalid) }
        }
        // JSON round trip; an invalid ID does not decode.
        let encoded = try JSONEncoder().encode([try DeviceID("sales-1")])
        XCTAssertEqual(String(decoding: encoded, as: UTF8.self), #"["sales-1"]"#)
        XCTAssertEqual(try JSONDecoder().decode([DeviceID].self, from: encoded), [try DeviceID("sales-1")])
        XCTAssertThrowsError(try JSONDecoder().decode([DeviceID].self, from: Data(#"["a b"]"#.utf8)))
        let generated = DeviceID.generate()
        XCTAssertTrue(DeviceID.isValid(generated.rawValue))
        XCTAssertNotNil(UUID(uuidString: generated.rawValue))
        XCTAssertNotEqual(DeviceID.generate(), DeviceID.generate())
    }

    func testCreateListUpdateDelete() async throws {
        let dir = try makeTemporaryDirectory(self)
        let store = try openStore(dir)
        let t0 = Date(timeIntervalSince1970: 1_700_000_000)

        let sales = try await store.createDevice(id: try DeviceID("sales-1"), settings: #"{"rate":5}"#)
        XCTAssertEqual(sales.state, .disconnected)
        XCTAssertNil(sales.jid)
        XCTAssertEqual(sales.settings, #"{"rate":5}"#)
        let generated = try await store.createDevice()
        XCTAssertNotNil(UUID(uuidString: generated.id.rawValue))

        await assertStoreError(.deviceExists) { try await store.createDevice(id: try DeviceID("sales-1")) }
        await assertStoreError(.invalidSettings) { try await store.createDevice(id: try DeviceID("bad"), settings: "[1]") }
        let v2 = try await store.listDevices().map(\.id)
        XCTAssertEqual(v2, [sales.id, generated.id])

        let connecting = try await store.registry.updateState(sales.id, to: .connecting, now: t0)
        XCTAssertEqual(connecting.state, .connecting)
        XCTAssertEqual(connecting.updatedAt, t0)
        try await store.registry.setIdentity(sales.id, jid: "15551234567:3@s.whatsapp.net", lid: "123456789:3@lid", pushName: "Sales")
        try await store.registry.updateState(sales.id, to: .loggedOut)
        try await store.registry.updateSettings(sales.id, #"{"rate":7}"#)
        await assertStoreError(.invalidSettings) { try await store.registry.updateSettings(sales.id, "nope") }

        // Read back from a fresh store: everything was on disk.
        store.closeAll()
        let again = try openStore(dir)
        let read = try await again.registry.device(sales.id)
        XCTAssertEqual(read.jid, "15551234567:3@s.whatsapp.net")
        XCTAssertEqual(read.lid, "123456789:3@lid")
        XCTAssertEqual(read.pushName, "Sales")
        XCTAssertEqual(read.state, .loggedOut)
        XCTAssertEqual(read.settings, #"{"rate":7}"#)
        XCTAssertEqual(read.createdAt.timeIntervalSince1970, sales.createdAt.timeIntervalSince1970, accuracy: 0.001)

        let folder = again.folder(of: sales.id)
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder.path))
        try await again.deleteDevice(sales.id)
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.path))
        await assertStoreError(.notFound) { try await again.registry.device(sales.id) }
        await assertStoreError(.notFound) { try await again.device(sales.id) }
        await assertStoreError(.notFound) { try await again.deleteDevice(sales.id) }
        await assertStoreError(.notFound) { try await again.registry.updateState(sales.id, to: .connected) }
        let v3 = try await again.listDevices().map(\.id)
        XCTAssertEqual(v3, [generated.id])
        let v4 = try await again.registry.deviceCount()
        XCTAssertEqual(v4, 1)

        // The ID can be used again after a delete, with an empty slot.
        let reborn = try await again.createDevice(id: sales.id)
        let keys = try await again.device(reborn.id).keys
        let record = try await keys.loadDevice()
        XCTAssertNil(record)
    }

    func testHandleOfADeletedDeviceFailsAndDoesNotRecreateTheFolder() async throws {
        let dir = try makeTemporaryDirectory(self)
        let store = try openStore(dir)
        let id = try DeviceID("gone")
        try await store.createDevice(id: id)
        let handle = try await store.device(id)
        XCTAssertEqual(store.openDatabaseCount, 2, "session and history opened at create")
        try await store.deleteDevice(id)
        XCTAssertEqual(store.openDatabaseCount, 0, "delete closes the device's databases")
        await assertStoreError(.notFound) { try await handle.keys.loadDevice() }
        await assertStoreError(.notFound) { try await handle.data.outboxCount() }
        XCTAssertFalse(FileManager.default.fileExists(atPath: store.folder(of: id).path))
    }
}
