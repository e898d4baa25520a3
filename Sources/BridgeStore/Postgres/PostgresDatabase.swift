import Foundation
import Logging
import PostgresNIO

/// The one PostgreSQL database of the bridge: a connection pool (`PostgresClient`) run by a
/// task this object owns, shut down by `shutdown()`. Every device's rows live here, told apart
/// by their `device_id` column; a handle passes its own id into each query it runs.
final class PostgresDatabase: Sendable {
    let client: PostgresClient
    let logger: Logger
    private let runner: Task<Void, Never>

    init(configuration: PostgresClient.Configuration, logger: Logger) {
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.client = client
        self.logger = logger
        runner = Task { await client.run() }
    }

    /// Parses `postgres://user:pass@host:port/db` (also `postgresql://`; `?sslmode=require`
    /// asks for TLS, anything else connects in the clear, as on a private network).
    static func configuration(url text: String) throws(StoreError) -> PostgresClient.Configuration {
        guard let url = URLComponents(string: text), let scheme = url.scheme, ["postgres", "postgresql"].contains(scheme),
              let host = url.host, !host.isEmpty, let user = url.user, !user.isEmpty else {
            throw StoreError(.invalidDatabaseURL, "the database URL must look like postgres://user:pass@host:port/db")
        }
        let database = url.path.hasPrefix("/") ? String(url.path.dropFirst()) : url.path
        let sslMode = url.queryItems?.first { $0.name == "sslmode" }?.value
        let tls: PostgresClient.Configuration.TLS = sslMode == "require" ? .require(.makeClientConfiguration()) : .disable
        var configuration = PostgresClient.Configuration(
            host: host, port: url.port ?? 5432, username: user.removingPercentEncoding ?? user,
            password: url.password?.removingPercentEncoding ?? url.password, database: database.isEmpty ? nil : database, tls: tls)
        configuration.options.maximumConnections = 20
        return configuration
    }

    /// Stops the pool (its connections close) and waits for its task.
    func shutdown() async {
        runner.cancel()
        await runner.value
    }

    /// Runs `body` on one pooled connection, outside a transaction (single statements).
    @discardableResult
    func read<T: Sendable>(_ what: String, _ body: (PostgresConnection) async throws -> T) async throws(StoreError) -> T {
        do { return try await client.withConnection { try await body($0) } } catch {
            throw Self.storeError(what, error)
        }
    }

    /// Runs `body` in one transaction (rolled back when it throws).
    @discardableResult
    func write<T: Sendable>(_ what: String, _ body: (PostgresConnection) async throws -> T) async throws(StoreError) -> T {
        do { return try await client.withTransaction(logger: logger) { try await body($0) } } catch {
            throw Self.storeError(what, error)
        }
    }

    /// `write` for the ownership rounds (leases, fences): a lock it waits on for a second fails
    /// the transaction instead. A worker frozen (SIGSTOP, a paused VM) in the middle of a
    /// transaction keeps its row locks until it runs again; waiting on them would stop this
    /// worker's rounds and let its own leases run out. Our transactions take milliseconds, so
    /// a longer wait means a stopped holder; the round tries again next time. (The server's
    /// `idle_in_transaction_session_timeout` would free the locks, but postgres-nio 1.x never
    /// returns from the next query on a connection the server ended that way.)
    ///
    /// A lock still held after the wait belongs to a session left idle inside a transaction for
    /// seconds: a worker stopped mid-transaction (a frozen writer's `FOR SHARE` on a fence row
    /// would otherwise keep the device from its new owner for as long as it stays frozen). Such
    /// sessions of this database and user are ended (`pg_terminate_backend`), and the next round
    /// goes through; a frozen worker's lost leases are not its own any more anyway.
    @discardableResult
    func leaseWrite<T: Sendable>(_ what: String, _ body: (PostgresConnection) async throws -> T) async throws(StoreError) -> T {
        let logger = self.logger
        do {
            return try await write(what) { c in
                try await c.run("SET LOCAL lock_timeout = '1s'", logger)
                return try await body(c)
            }
        } catch {
            if error.message.contains("sqlstate 55P03") { await endStalledTransactions() }
            throw error
        }
    }

    /// Ends the sessions of this database and user idle in a transaction for over 3 s (ours take
    /// milliseconds).
    private func endStalledTransactions() async {
        let logger = self.logger
        let ended = try? await read("endStalledTransactions") { c in
            try await c.run("""
                SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                WHERE datname = current_database() AND usename = current_user AND pid <> pg_backend_pid()
                  AND state IN ('idle in transaction', 'idle in transaction (aborted)')
                  AND state_change < now() - interval '3 seconds'
                """, logger)
        }
        if let ended, ended > 0 {
            logger.warning("ended database sessions stalled inside a transaction", metadata: ["sessions": "\(ended)"])
        }
    }

    /// A `StoreError` for anything a query threw; a `StoreError` from inside a transaction comes out as it was.
    /// The message holds the server's words and SQL state, never the query's values (they may be keys).
    static func storeError(_ what: String, _ error: any Error) -> StoreError {
        if let error = error as? StoreError { return error }
        if let error = error as? PostgresTransactionError {
            if let inner = error.closureError { return storeError(what, inner) }
            if let inner = error.beginError ?? error.commitError { return storeError(what, inner) }
        }
        if let error = error as? PSQLError {
            let state = error.serverInfo?[.sqlState]
            let message = error.serverInfo?[.message] ?? "\(error.code)"
            if state == "23505" { return StoreError(.database, "\(what): unique violation: \(message)") }
            return StoreError(.database, "\(what): \(message)\(state.map { " (sqlstate \($0))" } ?? "")")
        }
        return StoreError(.database, "\(what): \(error)")
    }

    static func isUniqueViolation(_ error: any Error) -> Bool {
        if let error = error as? PostgresTransactionError, let inner = error.closureError ?? error.commitError {
            return isUniqueViolation(inner)
        }
        return (error as? PSQLError)?.serverInfo?[.sqlState] == "23505"
    }
}

extension PostgresConnection {
    /// Every row of `query` (decode with `row.decode((A, B).self)`).
    func rows(_ query: PostgresQuery, _ logger: Logger) async throws -> [PostgresRow] {
        try await self.query(query, logger: logger).collect()
    }

    /// The first row of `query`, if any.
    func row(_ query: PostgresQuery, _ logger: Logger) async throws -> PostgresRow? {
        try await rows(query, logger).first
    }

    /// Runs a statement and drains it; returns how many rows it returned (`RETURNING 1` counts changes).
    @discardableResult
    func run(_ query: PostgresQuery, _ logger: Logger) async throws -> Int {
        var n = 0
        for try await _ in try await self.query(query, logger: logger) { n += 1 }
        return n
    }
}
