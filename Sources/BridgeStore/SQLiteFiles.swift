import Foundation
import GRDB
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How BridgeStore opens its SQLite files and folders: private permissions
/// (folders 0700, files 0600), WAL, a busy timeout and a bounded page cache.
struct SQLiteFiles: Sendable {
    var busyTimeout: TimeInterval
    /// Page cache per connection, in KiB (`PRAGMA cache_size = -N`).
    var cacheSizeKiB: Int

    /// Creates `url` (and parents) as 0700 folders, or tightens an existing one.
    static func makePrivateDirectory(_ url: URL) throws(StoreError) {
        do {
            try FileManager.default.createDirectory(
                at: url, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: url.path)
        } catch {
            throw StoreError(.io, "cannot create folder \(url.lastPathComponent): \(error.localizedDescription)")
        }
    }

    /// Creates `url` as an empty 0600 file when absent (SQLite then gives its
    /// -wal and -shm files the same mode), and tightens it when present.
    static func makePrivateFile(_ url: URL) throws(StoreError) {
        let fd = open(url.path, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StoreError(.io, "cannot create \(url.lastPathComponent): errno \(errno)") }
        close(fd)
        guard chmod(url.path, 0o600) == 0 else { throw StoreError(.io, "cannot chmod \(url.lastPathComponent): errno \(errno)") }
    }

    /// Opens (creating when needed) a database file and runs its migrations.
    ///
    /// Several worker processes may open the same new file at once (workers sharing a data
    /// folder): the migrations and `afterMigrating` run under an exclusive `flock` on a lock
    /// file beside it, as GRDB's migrator reads the applied migrations before it locks the
    /// database. (A separate file: closing any descriptor of the database itself would drop
    /// SQLite's own POSIX locks.)
    func openQueue(at url: URL, migrator: DatabaseMigrator, secureDelete: Bool,
                   afterMigrating: ((DatabaseQueue) throws(StoreError) -> Void)? = nil) throws(StoreError) -> DatabaseQueue {
        try Self.makePrivateFile(url)
        var configuration = Configuration()
        configuration.busyMode = .timeout(busyTimeout)
        configuration.label = url.lastPathComponent
        let cacheSize = cacheSizeKiB
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA journal_mode = WAL")
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            try db.execute(sql: "PRAGMA cache_size = -\(cacheSize)")
            if secureDelete { try db.execute(sql: "PRAGMA secure_delete = ON") }
        }
        do {
            let queue = try DatabaseQueue(path: url.path, configuration: configuration)
            try Self.withExclusiveLock(url.path + ".lock") { () throws(StoreError) in
                do { try migrator.migrate(queue) } catch let e as StoreError { throw e } catch {
                    throw StoreError(.database, "cannot migrate \(url.lastPathComponent): \(error)")
                }
                try afterMigrating?(queue)
            }
            for suffix in ["-wal", "-shm"] {
                let side = url.path + suffix
                if FileManager.default.fileExists(atPath: side) { _ = chmod(side, 0o600) }
            }
            return queue
        } catch let error as StoreError {
            throw error
        } catch let error as DatabaseError where error.resultCode == .SQLITE_NOTADB || error.resultCode == .SQLITE_CORRUPT {
            throw StoreError(.corrupt, "\(url.lastPathComponent) is not a valid database")
        } catch {
            throw StoreError(.database, "cannot open \(url.lastPathComponent): \(error)")
        }
    }

    /// Runs `body` holding an exclusive `flock` on `path` (created 0600 when missing).
    static func withExclusiveLock<T>(_ path: String, _ body: () throws(StoreError) -> T) throws(StoreError) -> T {
        let fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StoreError(.io, "cannot open lock file \((path as NSString).lastPathComponent): errno \(errno)") }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else { throw StoreError(.io, "cannot lock \((path as NSString).lastPathComponent): errno \(errno)") }
        }
        defer { flock(fd, LOCK_UN) }
        return try body()
    }
}
