import Logging
import XCTest
@testable import BridgeStore

// The same bodies (`StoreConformanceCase`) on each backend. A new check is added to both lists.

final class StoreConformanceSQLiteTests: StoreConformanceCase {
    override func makeBackend() async throws -> any StoreBackend { try SQLiteTestBackend() }

    func testRegistryCRUDAndSettings() async throws { try await checkRegistryCRUDAndSettings() }
    func testRegistryOutbox() async throws { try await checkRegistryOutbox() }
    func testDeviceKeysRoundTrip() async throws { try await checkDeviceKeysRoundTrip() }
    func testKeysSealedWithTheMasterKeyAndRefusedWithAWrongOne() async throws { try await checkKeysSealedWithTheMasterKeyAndRefusedWithAWrongOne() }
    func testSignalSessionsPreKeysSenderKeysAndCommit() async throws { try await checkSignalSessionsPreKeysSenderKeysAndCommit() }
    func testLIDMappings() async throws { try await checkLIDMappings() }
    func testPrivacyTokens() async throws { try await checkPrivacyTokens() }
    func testAppState() async throws { try await checkAppState() }
    func testPendingPlaintexts() async throws { try await checkPendingPlaintexts() }
    func testHistoryAndHistorySyncBounds() async throws { try await checkHistoryAndHistorySyncBounds() }
    func testOutbox() async throws { try await checkOutbox() }
    func testIdempotencyRecords() async throws { try await checkIdempotencyRecords() }
    func testIsolation() async throws { try await checkIsolation() }
    func testFencing() async throws { try await checkFencing() }
    func testFenceAcrossWorkers() async throws { try await checkFenceAcrossWorkers() }
    func testNoFencedWriteLandsAfterTheRaise() async throws { try await checkNoFencedWriteLandsAfterTheRaise() }
    func testLeaseOneOwnerAtATime() async throws { try await checkLeaseOneOwnerAtATime() }
    func testLeaseExpiryAndRenew() async throws { try await checkLeaseExpiryAndRenew() }
    func testLeaseRacingWorkersGetEachDeviceOnce() async throws { try await checkLeaseRacingWorkersGetEachDeviceOnce() }
    func testATakeOverRecordsTheDeviceDisconnected() async throws { try await checkATakeOverRecordsTheDeviceDisconnected() }
    func testHeartbeats() async throws { try await checkHeartbeats() }
    func testADeletedDeviceTakesItsLeaseAlong() async throws { try await checkADeletedDeviceTakesItsLeaseAlong() }
}

final class StoreConformancePostgresTests: StoreConformanceCase {
    override func makeBackend() async throws -> any StoreBackend { try await PostgresTestBackend.make() }

    func testRegistryCRUDAndSettings() async throws { try await checkRegistryCRUDAndSettings() }
    func testRegistryOutbox() async throws { try await checkRegistryOutbox() }
    func testDeviceKeysRoundTrip() async throws { try await checkDeviceKeysRoundTrip() }
    func testKeysSealedWithTheMasterKeyAndRefusedWithAWrongOne() async throws { try await checkKeysSealedWithTheMasterKeyAndRefusedWithAWrongOne() }
    func testSignalSessionsPreKeysSenderKeysAndCommit() async throws { try await checkSignalSessionsPreKeysSenderKeysAndCommit() }
    func testLIDMappings() async throws { try await checkLIDMappings() }
    func testPrivacyTokens() async throws { try await checkPrivacyTokens() }
    func testAppState() async throws { try await checkAppState() }
    func testPendingPlaintexts() async throws { try await checkPendingPlaintexts() }
    func testHistoryAndHistorySyncBounds() async throws { try await checkHistoryAndHistorySyncBounds() }
    func testOutbox() async throws { try await checkOutbox() }
    func testIdempotencyRecords() async throws { try await checkIdempotencyRecords() }
    func testIsolation() async throws { try await checkIsolation() }
    func testFencing() async throws { try await checkFencing() }
    func testFenceAcrossWorkers() async throws { try await checkFenceAcrossWorkers() }
    func testNoFencedWriteLandsAfterTheRaise() async throws { try await checkNoFencedWriteLandsAfterTheRaise() }
    func testLeaseOneOwnerAtATime() async throws { try await checkLeaseOneOwnerAtATime() }
    func testLeaseExpiryAndRenew() async throws { try await checkLeaseExpiryAndRenew() }
    func testLeaseRacingWorkersGetEachDeviceOnce() async throws { try await checkLeaseRacingWorkersGetEachDeviceOnce() }
    func testATakeOverRecordsTheDeviceDisconnected() async throws { try await checkATakeOverRecordsTheDeviceDisconnected() }
    func testHeartbeats() async throws { try await checkHeartbeats() }
    func testADeletedDeviceTakesItsLeaseAlong() async throws { try await checkADeletedDeviceTakesItsLeaseAlong() }
}

/// What only the PostgreSQL backend has: its migration list, its lock timeouts.
final class PostgresSchemaTests: XCTestCase {

    /// A worker of its own that stops (for `duration`) inside a transaction holding `device`'s lease row.
    private func stopInsideALeaseTransaction(_ backend: PostgresTestBackend, device: String,
                                             for duration: Duration) throws -> (PostgresDatabase, Task<Void, any Error>) {
        let stopped = PostgresDatabase(configuration: try PostgresDatabase.configuration(url: backend.url), logger: Logger(label: "test.stopped"))
        let holding = Task {
            try await stopped.write("stopped") { c in
                try await c.run("UPDATE lease SET expires_at = 0 WHERE device_id = \(device)", stopped.logger)
                try await Task.sleep(for: duration)
            }
        }
        return (stopped, holding)
    }

    /// A transaction left open by a stopped worker does not hold another worker's lease round:
    /// the waiting acquire fails after the lock timeout; once the holder goes on, it succeeds.
    func testALockHeldByAStoppedWorkerTimesOut() async throws {
        let backend = try await PostgresTestBackend.make()
        do {
            let store = try await backend.open(masterKey: nil)
            let id = try await store.createDevice(id: DeviceID("d1")).id
            _ = try await store.leases.acquire(id, owner: "A", ttl: 0.1)
            // "A" stops inside a transaction that holds the device's lease row.
            let (stopped, holding) = try stopInsideALeaseTransaction(backend, device: "d1", for: .seconds(4))
            try await Task.sleep(for: .milliseconds(300))
            let started = ContinuousClock.now
            await assertStoreError(.database) { try await store.leases.acquire(id, owner: "B", ttl: 30) }
            let waited = ContinuousClock.now - started
            XCTAssertLessThan(waited, .seconds(3), "the acquire waited for the stopped transaction")
            _ = try? await holding.value
            await stopped.shutdown()
            let taken = try await store.leases.acquire(id, owner: "B", ttl: 30)
            XCTAssertEqual(taken?.owner, "B")
        } catch {
            await backend.close()
            throw error
        }
        await backend.close()
    }

    /// A transaction left open for seconds (a worker frozen mid-write) is ended by the worker whose
    /// lease write it blocks, and the next acquire goes through. (The stalled session's own next
    /// query is not awaited: with postgres-nio 1.33 it does not return, docs/architecture.md.)
    func testAStalledTransactionIsEndedByTheWorkerItBlocks() async throws {
        let backend = try await PostgresTestBackend.make()
        do {
            let store = try await backend.open(masterKey: nil)
            let id = try await store.createDevice(id: DeviceID("d1")).id
            _ = try await store.leases.acquire(id, owner: "A", ttl: 0.1)
            let (_, holding) = try stopInsideALeaseTransaction(backend, device: "d1", for: .seconds(3600))
            try await Task.sleep(for: .seconds(3.5))
            await assertStoreError(.database) { try await store.leases.acquire(id, owner: "B", ttl: 30) }
            let taken = try await store.leases.acquire(id, owner: "B", ttl: 30)
            XCTAssertEqual(taken?.owner, "B", "the stalled session still holds the lease row")
            holding.cancel()
        } catch {
            await backend.close()
            throw error
        }
        await backend.close()
    }

    func testMigrationsAreNamedAppliedOnceAndIdempotent() async throws {
        let backend = try await PostgresTestBackend.make()
        do {
            // Two stores starting on one empty database: the advisory lock lets one migrate.
            async let first = backend.open(masterKey: nil)
            async let second = backend.open(masterKey: nil)
            _ = try await (first, second)
            _ = try await backend.open(masterKey: nil)  // a restart migrates nothing
            let names = try await backend.query("SELECT name FROM schema_migrations ORDER BY applied_at, name").map { try $0.decode(String.self) }
            XCTAssertEqual(names.sorted(), PostgresSchema.migrations.map(\.name).sorted())
            XCTAssertEqual(Set(names).count, PostgresSchema.migrations.count, "each migration is recorded once")
            XCTAssertEqual(Set(PostgresSchema.migrations.map(\.name)).count, PostgresSchema.migrations.count, "names are unique")
            // Every per-device table is keyed by device_id first (isolation by construction).
            let tables = try await backend.query("""
                SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0]
                WHERE i.indisprimary AND n.nspname = 'public' AND a.attname = 'device_id'
                """).map { try $0.decode(String.self) }
            XCTAssertEqual(Set(tables), [
                "key_meta", "account", "identity", "pre_key", "pre_key_counter", "signed_pre_key", "session", "sender_key",
                "pending_plaintext", "lid_mapping", "privacy_token", "nct_salt", "app_state_sync_key", "app_state_version",
                "app_state_mutation_mac", "app_state_contact", "app_state_chat", "app_state_setting", "message", "idempotency",
                "conversation", "push_name", "device_fence", "lease",
            ])
        } catch {
            await backend.close()
            throw error
        }
        await backend.close()
    }
}
