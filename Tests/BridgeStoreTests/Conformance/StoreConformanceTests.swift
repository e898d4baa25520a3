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
    func testLeaseOneOwnerAtATime() async throws { try await checkLeaseOneOwnerAtATime() }
    func testLeaseExpiryAndRenew() async throws { try await checkLeaseExpiryAndRenew() }
    func testLeaseRacingWorkersGetEachDeviceOnce() async throws { try await checkLeaseRacingWorkersGetEachDeviceOnce() }
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
    func testLeaseOneOwnerAtATime() async throws { try await checkLeaseOneOwnerAtATime() }
    func testLeaseExpiryAndRenew() async throws { try await checkLeaseExpiryAndRenew() }
    func testLeaseRacingWorkersGetEachDeviceOnce() async throws { try await checkLeaseRacingWorkersGetEachDeviceOnce() }
    func testHeartbeats() async throws { try await checkHeartbeats() }
    func testADeletedDeviceTakesItsLeaseAlong() async throws { try await checkADeletedDeviceTakesItsLeaseAlong() }
}
