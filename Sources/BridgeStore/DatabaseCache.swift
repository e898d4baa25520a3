import Foundation
import GRDB
import Synchronization

/// Which database of a device.
enum DeviceDatabaseKind: String, Sendable, Hashable {
    /// `session.sqlite`: every key the client keeps.
    case session
    /// `history.sqlite`: message history, event outbox, idempotency records.
    case history
}

/// One open SQLite connection. Counted while alive, so tests and metrics can
/// see how many databases are open; the connection closes when the last
/// reference goes (the cache dropped it and no operation still uses it).
final class OpenDatabase: Sendable {
    let queue: DatabaseQueue
    private let counter: OpenCounter

    init(queue: DatabaseQueue, counter: OpenCounter) {
        self.queue = queue
        self.counter = counter
        counter.opened()
    }

    deinit { counter.closed() }
}

/// How many connections are alive now, and the most ever alive at once.
final class OpenCounter: Sendable {
    private let state = Mutex<(now: Int, peak: Int, opens: Int)>((0, 0, 0))

    func opened() {
        state.withLock {
            $0.now += 1
            $0.opens += 1
            $0.peak = max($0.peak, $0.now)
        }
    }

    func closed() { state.withLock { $0.now -= 1 } }

    var snapshot: (now: Int, peak: Int, opens: Int) { state.withLock { $0 } }
    func resetPeak() { state.withLock { $0.peak = $0.now } }
}

/// Lazily opened, least-recently-used-closed per-device databases: at most
/// `capacity` stay open; the oldest is dropped when another must open, and
/// the next use reopens it (migrations are idempotent, so reopening is
/// invisible to callers). An operation already running on a dropped
/// connection finishes on it; the connection closes after that.
final class DatabaseCache: Sendable {
    struct Key: Hashable, Sendable {
        var device: DeviceID
        var kind: DeviceDatabaseKind
    }

    typealias Opener = @Sendable (Key) throws -> DatabaseQueue

    private struct State {
        var entries: [Key: (database: OpenDatabase, tick: UInt64)] = [:]
        var tick: UInt64 = 0
    }

    let capacity: Int
    let counter = OpenCounter()
    private let opener: Opener
    private let state = Mutex(State())
    /// Serialises opening, so two callers never open the same file twice at once.
    private let openLock = Mutex(())

    init(capacity: Int, opener: @escaping Opener) {
        self.capacity = max(1, capacity)
        self.opener = opener
    }

    /// The open database for `key`, opening it (and closing the least recently used) when needed.
    func database(for key: Key) throws(StoreError) -> OpenDatabase {
        if let hit = touch(key) { return hit }
        do {
            return try open(key)
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(.database, "cannot open the \(key.kind) database of \(key.device): \(error)")
        }
    }

    private func open(_ key: Key) throws -> OpenDatabase {
        try openLock.withLock { _ in
            if let hit = touch(key) { return hit }
            // Make room first, so the limit holds while the new one opens
            // (only openers add entries, and they hold `openLock`).
            var evicted: [OpenDatabase] = []
            state.withLock { state in
                while state.entries.count >= capacity,
                      let oldest = state.entries.min(by: { $0.value.tick < $1.value.tick }) {
                    evicted.append(oldest.value.database)
                    state.entries[oldest.key] = nil
                }
            }
            evicted.removeAll()  // released outside the state lock: closes now unless in use
            let database = OpenDatabase(queue: try opener(key), counter: counter)
            state.withLock { state in
                state.tick += 1
                state.entries[key] = (database, state.tick)
            }
            return database
        }
    }

    private func touch(_ key: Key) -> OpenDatabase? {
        state.withLock { state in
            guard let entry = state.entries[key] else { return nil }
            state.tick += 1
            state.entries[key] = (entry.database, state.tick)
            return entry.database
        }
    }

    /// Drops every open database of `device` (before deleting its folder).
    func close(device: DeviceID) {
        var dropped: [OpenDatabase] = []
        state.withLock { state in
            for key in state.entries.keys where key.device == device {
                dropped.append(state.entries.removeValue(forKey: key)!.database)
            }
        }
        for database in dropped { try? database.queue.close() }
    }

    /// Drops everything (store shutdown).
    func closeAll() {
        let dropped = state.withLock { state in
            let all = state.entries.values.map(\.database)
            state.entries.removeAll()
            return all
        }
        for database in dropped { try? database.queue.close() }
    }

    /// How many databases the cache holds open now.
    var cachedCount: Int { state.withLock { $0.entries.count } }
}
