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
    func openQueue(at url: URL, migrator: DatabaseMigrator, secureDelete: Bool) throws(StoreError) -> DatabaseQueue {
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
            try migrator.migrate(queue)
            for suffix in ["-wal", "-shm"] {
                let side = url.path + suffix
                if FileManager.default.fileExists(atPath: side) { _ = chmod(side, 0o600) }
            }
            return queue
        } catch let error as DatabaseError where error.resultCode == .SQLITE_NOTADB || error.resultCode == .SQLITE_CORRUPT {
            throw StoreError(.corrupt, "\(url.lastPathComponent) is not a valid database")
        } catch {
            throw StoreError(.database, "cannot open \(url.lastPathComponent): \(error)")
        }
    }
}
