import Foundation
import Logging
import PostgresNIO
import Synchronization
import XCTest
@testable import BridgeStore

/// Makes the stores of one conformance test on one backend. `open` may be called again for
/// the same backing (a restart, another worker, another master key); `close` shuts every
/// store down and removes the backing (folder or database).
protocol StoreBackend: Sendable {
    func open(masterKey: MasterKey?) async throws -> BridgeStore
    func close() async
}

/// SQLite files under a temporary folder.
final class SQLiteTestBackend: StoreBackend {
    let directory: URL
    private let stores = Mutex<[BridgeStore]>([])

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("conformance-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    func open(masterKey: MasterKey?) async throws -> BridgeStore {
        let store = try BridgeStore(configuration: .init(dataDirectory: directory.appendingPathComponent("data"), masterKey: masterKey))
        stores.withLock { $0.append(store) }
        return store
    }

    func close() async {
        for store in stores.withLock({ $0 }) { await store.shutdown() }
        try? FileManager.default.removeItem(at: directory)
    }
}

/// A database of its own (`t_<random>`) on the test server of `WABRIDGE_TEST_DATABASE_URL`
/// (`scripts/test-postgres.sh`), dropped at the end; media under a temporary folder.
final class PostgresTestBackend: StoreBackend {
    let url: String
    let adminURL: String
    let name: String
    let directory: URL
    private let stores = Mutex<[BridgeStore]>([])

    static var environmentURL: String? { ProcessInfo.processInfo.environment["WABRIDGE_TEST_DATABASE_URL"] }

    /// Skips (locally) or fails (under `CI=true`) when no test server is configured.
    static func make() async throws -> PostgresTestBackend {
        guard let admin = environmentURL, !admin.isEmpty else {
            let message = "WABRIDGE_TEST_DATABASE_URL is not set: start one with `eval \"$(scripts/test-postgres.sh start)\"`"
            if ProcessInfo.processInfo.environment["CI"] == "true" {
                XCTFail(message)
                throw StoreError(.database, message)
            }
            throw XCTSkip(message)
        }
        let name = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(20)
        try await runAdmin(admin, "CREATE DATABASE \(name)")
        guard var components = URLComponents(string: admin) else { throw StoreError(.invalidDatabaseURL, "bad test URL") }
        components.path = "/\(name)"
        return try PostgresTestBackend(url: components.string!, adminURL: admin, name: String(name))
    }

    private init(url: String, adminURL: String, name: String) throws {
        self.url = url
        self.adminURL = adminURL
        self.name = name
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("conformance-\(name)", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    static func runAdmin(_ url: String, _ sql: String) async throws {
        let database = PostgresDatabase(configuration: try PostgresDatabase.configuration(url: url), logger: Logger(label: "test.admin"))
        do {
            try await database.read("admin") { c in try await c.run(PostgresQuery(unsafeSQL: sql), database.logger) }
        } catch {
            await database.shutdown()
            throw error
        }
        await database.shutdown()
    }

    func open(masterKey: MasterKey?) async throws -> BridgeStore {
        let store = try await BridgeStore.postgres(
            url: url, configuration: .init(dataDirectory: directory.appendingPathComponent("data"), masterKey: masterKey))
        stores.withLock { $0.append(store) }
        return store
    }

    /// A raw query on the test database (checks what is stored, beside the API).
    func query(_ sql: PostgresQuery) async throws -> [PostgresRow] {
        let database = PostgresDatabase(configuration: try PostgresDatabase.configuration(url: url), logger: Logger(label: "test.raw"))
        do {
            let rows = try await database.read("raw") { c in try await c.rows(sql, database.logger) }
            await database.shutdown()
            return rows
        } catch {
            await database.shutdown()
            throw error
        }
    }

    func close() async {
        for store in stores.withLock({ $0 }) { await store.shutdown() }
        try? await Self.runAdmin(adminURL, "DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
        try? FileManager.default.removeItem(at: directory)
    }
}
