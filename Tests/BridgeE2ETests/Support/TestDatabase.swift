import Foundation
import WATestSupport
import XCTest

/// A PostgreSQL database of its own on the test server (`WABRIDGE_TEST_DATABASE_URL`, started
/// by `scripts/test-postgres.sh`), made and dropped with `psql` (`PostgresShell`) so that this target
/// needs no database driver: the workers under test are the only PostgreSQL clients that matter.
struct TestDatabase {
    let adminURL: String
    let name: String
    /// The URL the workers get as `WABRIDGE_DATABASE_URL`.
    let url: String

    /// Skips locally, fails in CI, when no test server is configured.
    static func create(prefix: String) throws -> TestDatabase {
        guard let admin = ProcessInfo.processInfo.environment["WABRIDGE_TEST_DATABASE_URL"], !admin.isEmpty else {
            let message = "WABRIDGE_TEST_DATABASE_URL is not set: start one with `eval \"$(scripts/test-postgres.sh start)\"`"
            if ProcessInfo.processInfo.environment["CI"] == "true" { XCTFail(message) }
            throw XCTSkip(message)
        }
        let name = "t_\(prefix)_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(12)
        var components = try XCTUnwrap(URLComponents(string: admin))
        components.path = "/\(name)"
        let db = TestDatabase(adminURL: admin, name: name, url: try XCTUnwrap(components.string))
        try PostgresShell.run(admin, "CREATE DATABASE \(name)")
        return db
    }

    /// Rows of one statement, first column, as `psql -At` prints them.
    @discardableResult
    func query(_ sql: String) throws -> [String] { try PostgresShell.run(url, sql) }

    func drop() { _ = try? PostgresShell.run(adminURL, "DROP DATABASE IF EXISTS \(name) WITH (FORCE)") }
}
