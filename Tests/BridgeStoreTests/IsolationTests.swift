import Foundation
import WAClient
import WASignal
import XCTest
@testable import BridgeStore

final class IsolationTests: XCTestCase {
    func testTwoDevicesShareNothing() async throws {
        let dir = try makeTemporaryDirectory(self)
        let store = try openStore(dir)
        let a = try await SignalDevice.make(store, id: "dev-a", user: "15550000001")
        let b = try await store.device(try await store.createDevice(id: try DeviceID("dev-b")).id)

        let peer = SignalAddress(name: "15557777777", deviceID: 0)
        try await a.storage.keys.storeSession(SessionRecord(), for: peer)
        try await a.storage.data.appendEvent(eventID: "only-a", routingKey: "dev-a.x", payload: Data("a".utf8))
        _ = try await a.storage.data.recordCommandResult(commandID: "cmd-1", messageID: "M1", result: "{}")
        try await a.storage.data.saveMessage(HistoryMessage(
            id: "M1", chat: "c@s.whatsapp.net", sender: "s", direction: .incoming, timestamp: 1, kind: "text", status: "received"))

        let bRecord = try await b.keys.loadDevice()
        XCTAssertNil(bRecord)
        let bSession = try await b.keys.loadSession(for: peer)
        XCTAssertNil(bSession)
        let bPreKeys = try await b.keys.preKeyCount()
        XCTAssertEqual(bPreKeys, 0)
        let bEvents = try await b.data.peekEvents()
        XCTAssertEqual(bEvents, [])
        let bCommand = try await b.data.commandResult("cmd-1")
        XCTAssertNil(bCommand)
        let bMessage = try await b.data.message(chat: "c@s.whatsapp.net", id: "M1")
        XCTAssertNil(bMessage)
        XCTAssertNotEqual(a.storage.folder, b.folder)
        XCTAssertFalse((a.storage.keys as AnyObject) === (b.keys as AnyObject))
        // A wipe of b leaves a whole.
        try await b.keys.wipe()
        let aRecord = try await a.storage.keys.loadDevice()
        XCTAssertNotNil(aRecord)
        // Deleting a leaves b.
        try await store.deleteDevice(a.storage.id)
        let bEventsAfter = try await b.data.outboxCount()
        XCTAssertEqual(bEventsAfter, 0)
        XCTAssertTrue(FileManager.default.fileExists(atPath: b.folder.appendingPathComponent("session.sqlite").path))
    }

    func testFoldersAre0700AndFilesAre0600() async throws {
        let dir = try makeTemporaryDirectory(self)
        let store = try openStore(dir)
        let device = try await SignalDevice.make(store, id: "perm", user: "15550000009")
        try await device.storage.data.appendEvent(eventID: "e", routingKey: "perm.x", payload: Data())
        let data = dir.appendingPathComponent("data")
        for folder in [data, data.appendingPathComponent("devices"), device.storage.folder, device.storage.mediaDirectory] {
            XCTAssertEqual(try mode(of: folder), 0o700, folder.path)
        }
        var files = [data.appendingPathComponent("registry.sqlite")]
        for name in ["session.sqlite", "history.sqlite"] {
            files.append(device.storage.folder.appendingPathComponent(name))
        }
        var checked = 0
        for file in files {
            for suffix in ["", "-wal", "-shm"] {
                let url = URL(fileURLWithPath: file.path + suffix)
                guard FileManager.default.fileExists(atPath: url.path) else { continue }
                XCTAssertEqual(try mode(of: url), 0o600, url.path)
                checked += 1
            }
        }
        XCTAssertGreaterThanOrEqual(checked, 5, "the databases and at least some WAL files were checked")
        let items = try FileManager.default.contentsOfDirectory(atPath: device.storage.folder.path).sorted()
        XCTAssertTrue(Set(items).isSuperset(of: ["history.sqlite", "media", "session.sqlite"]), "\(items)")
    }
}
