import Foundation
import GRDB
import XCTest
@testable import BridgeStore

final class MigrationTests: XCTestCase {
    private func migrations(_ file: URL) throws -> [String] {
        let queue = try DatabaseQueue(path: file.path)
        defer { try? queue.close() }
        return try queue.read { db in try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations ORDER BY identifier") }
    }

    private func tables(_ file: URL) throws -> Set<String> {
        let queue = try DatabaseQueue(path: file.path)
        defer { try? queue.close() }
        return try queue.read { db in
            Set(try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"))
        }
    }

    func testMigrationsOnAnEmptyFolderAndIdempotentReopen() async throws {
        let dir = try makeTemporaryDirectory(self)
        let data = dir.appendingPathComponent("data")
        XCTAssertFalse(FileManager.default.fileExists(atPath: data.path))
        var store = try openStore(dir)
        let id = try DeviceID("mig")
        try await store.createDevice(id: id)
        let folder = store.folder(of: id)
        store.closeAll()

        let registry = data.appendingPathComponent("registry.sqlite")
        let session = folder.appendingPathComponent("session.sqlite")
        let history = folder.appendingPathComponent("history.sqlite")
        XCTAssertEqual(try migrations(registry), ["v1-devices", "v2-outbox", "v3-leases"])
        XCTAssertEqual(try migrations(session), ["v1-keys", "v2-pending-plaintexts", "v3-prekey-counter", "v4-lid-mapping", "v5-privacy-tokens", "v6-app-state-keys", "v7-fence"])
        XCTAssertEqual(try migrations(history), ["v1-history-outbox-idempotency", "v2-idempotency-correlation", "v3-published-events", "v4-history-sync"])
        XCTAssertTrue(try tables(session).isSuperset(of: ["meta", "account", "identity", "preKey", "signedPreKey", "session", "senderKey", "pendingPlaintext", "preKeyCounter", "appStateSyncKey", "appStateVersion", "appStateMutationMAC"]))
        XCTAssertTrue(try tables(history).isSuperset(of: ["message", "outbox", "idempotency", "published_event"]))
        XCTAssertTrue(try tables(registry).contains("device"))

        // Reopen twice: nothing is migrated again, nothing is lost.
        for _ in 0..<2 {
            store = try openStore(dir)
            let device = try await store.device(id)
            try await device.data.appendEvent(eventID: UUID().uuidString, routingKey: "mig.x", payload: Data())
            store.closeAll()
        }
        XCTAssertEqual(try migrations(session), ["v1-keys", "v2-pending-plaintexts", "v3-prekey-counter", "v4-lid-mapping", "v5-privacy-tokens", "v6-app-state-keys", "v7-fence"])
        XCTAssertEqual(try migrations(history), ["v1-history-outbox-idempotency", "v2-idempotency-correlation", "v3-published-events", "v4-history-sync"])
        store = try openStore(dir)
        let count = try await store.device(id).data.outboxCount()
        XCTAssertEqual(count, 2)

        // WAL mode, persistent in the file.
        let queue = try DatabaseQueue(path: history.path)
        let journal = try await queue.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") }
        XCTAssertEqual(journal, "wal")
        try queue.close()
    }

    func testNotADatabaseIsCorrupt() async throws {
        let dir = try makeTemporaryDirectory(self)
        let store = try openStore(dir)
        let id = try DeviceID("junk")
        try await store.createDevice(id: id)
        store.closeAll()
        let file = store.folder(of: id).appendingPathComponent("history.sqlite")
        try FileManager.default.removeItem(at: file)
        for suffix in ["-wal", "-shm"] { try? FileManager.default.removeItem(atPath: file.path + suffix) }
        try Data(repeating: 0x42, count: 4096).write(to: file)
        await assertStoreError(.corrupt) { try await store.device(id).data.outboxCount() }
    }
}
