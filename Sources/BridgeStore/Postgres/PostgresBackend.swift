import Foundation
import Logging
import Synchronization

/// What `BridgeStore` holds when it runs on PostgreSQL: the database (pool), its registry, and
/// the devices whose key check passed already (checked once per process, as SQLite checks a file once per open).
final class PostgresBackend: Sendable {
    let database: PostgresDatabase
    let registry: PostgresRegistry
    let leases: PostgresLeaseStore
    private let checked = Mutex<Set<DeviceID>>([])

    private init(database: PostgresDatabase) {
        self.database = database
        registry = PostgresRegistry(database: database)
        leases = PostgresLeaseStore(database: database)
    }

    /// Connects the pool and applies the migrations.
    static func open(url: String, logger: Logger) async throws(StoreError) -> PostgresBackend {
        let database = PostgresDatabase(configuration: try PostgresDatabase.configuration(url: url), logger: logger)
        do {
            try await PostgresSchema.migrate(database)
        } catch {
            await database.shutdown()
            throw error
        }
        return PostgresBackend(database: database)
    }

    func installKeyCheck(_ id: DeviceID, cipher: KeyCipher) async throws(StoreError) {
        try await PostgresKeyStore.verifyOrInstallKeyCheck(database, device: id, cipher: cipher)
        _ = checked.withLock { $0.insert(id) }
    }

    func verifyKeyCheck(_ id: DeviceID, cipher: KeyCipher) async throws(StoreError) {
        if checked.withLock({ $0.contains(id) }) { return }
        try await installKeyCheck(id, cipher: cipher)
    }

    func forget(_ id: DeviceID) { _ = checked.withLock { $0.remove(id) } }
}
