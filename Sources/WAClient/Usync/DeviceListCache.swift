import Foundation
import WABinary

/// Device lists per user, bounded two ways: at most `capacity` users (the
/// least recently used is evicted) and each entry lives at most `ttl`
/// seconds (then it is a miss and usync is asked again). A value type: the
/// device's actor owns one.
public struct DeviceListCache: Sendable {
    public let capacity: Int
    public let ttl: TimeInterval

    struct Entry: Sendable {
        var value: UsyncNodes.UserDevices
        var stored: Date
        var lastUse: UInt64
    }

    var entries: [JID: Entry] = [:]
    var clock: UInt64 = 0

    /// Defaults: 1,000 users, one hour.
    public init(capacity: Int = 1_000, ttl: TimeInterval = 3_600) {
        precondition(capacity > 0)
        self.capacity = capacity
        self.ttl = ttl
    }

    public var count: Int { entries.count }

    /// The devices of `user` if cached and fresh at `now`.
    public mutating func devices(of user: JID, now: Date = Date()) -> UsyncNodes.UserDevices? {
        let key = user.nonAD
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

    public mutating func store(_ value: UsyncNodes.UserDevices, now: Date = Date()) {
        clock += 1
        entries[value.user.nonAD] = Entry(value: value, stored: now, lastUse: clock)
        if entries.count > capacity, let oldest = entries.min(by: { $0.value.lastUse < $1.value.lastUse })?.key {
            entries[oldest] = nil
        }
    }

    /// Drops a user (a device-list notification or a phash mismatch says it changed).
    public mutating func invalidate(_ user: JID) { entries[user.nonAD] = nil }

    public mutating func removeAll() { entries.removeAll() }
}
