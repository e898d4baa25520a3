import Foundation
import WABinary

/// Values per JID (its non-AD form), bounded two ways: at most `capacity` keys (the least
/// recently used is evicted) and each entry lives at most `ttl` seconds (then it is a miss).
/// The one mechanism under the device-list and group-metadata caches. A value type: the
/// messaging actor owns each cache.
public struct ExpiringLRUCache<Value: Sendable>: Sendable {
    public let capacity: Int
    public let ttl: TimeInterval

    struct Entry: Sendable {
        var value: Value
        var stored: Date
        var lastUse: UInt64
    }

    var entries: [JID: Entry] = [:]
    var clock: UInt64 = 0

    public init(capacity: Int, ttl: TimeInterval) {
        precondition(capacity > 0)
        self.capacity = capacity
        self.ttl = ttl
    }

    public var count: Int { entries.count }

    /// The value of `key` if cached and fresh at `now` (a hit counts as a use).
    public mutating func value(for key: JID, now: Date = Date()) -> Value? {
        let key = key.nonAD
        guard var entry = entries[key] else { return nil }
        guard now.timeIntervalSince(entry.stored) < ttl else {
            entries[key] = nil
            return nil
        }
        clock += 1
        entry.lastUse = clock
        entries[key] = entry
        return entry.value
    }

    public mutating func store(_ value: Value, for key: JID, now: Date = Date()) {
        clock += 1
        entries[key.nonAD] = Entry(value: value, stored: now, lastUse: clock)
        if entries.count > capacity, let oldest = entries.min(by: { $0.value.lastUse < $1.value.lastUse })?.key {
            entries[oldest] = nil
        }
    }

    /// Drops a key; true when it was cached.
    @discardableResult
    public mutating func invalidate(_ key: JID) -> Bool { entries.removeValue(forKey: key.nonAD) != nil }

    public mutating func removeAll() { entries.removeAll() }
}
