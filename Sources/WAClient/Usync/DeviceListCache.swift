import Foundation
import WABinary

/// Device lists per user, bounded two ways: at most `capacity` users (the
/// least recently used is evicted) and each entry lives at most `ttl`
/// seconds (then it is a miss and usync is asked again). A value type: the
/// device's actor owns one.
public struct DeviceListCache: Sendable {
    var base: ExpiringLRUCache<UsyncNodes.UserDevices>
    public var capacity: Int { base.capacity }
    public var ttl: TimeInterval { base.ttl }

    /// Defaults: 1,000 users, one hour.
    public init(capacity: Int = 1_000, ttl: TimeInterval = 3_600) {
        base = ExpiringLRUCache(capacity: capacity, ttl: ttl)
    }

    public var count: Int { base.count }

    /// The devices of `user` if cached and fresh at `now`.
    public mutating func devices(of user: JID, now: Date = Date()) -> UsyncNodes.UserDevices? { base.value(for: user, now: now) }

    public mutating func store(_ value: UsyncNodes.UserDevices, now: Date = Date()) { base.store(value, for: value.user, now: now) }

    /// Drops a user (a device-list notification or a phash mismatch says it changed).
    public mutating func invalidate(_ user: JID) { base.invalidate(user) }

    public mutating func removeAll() { base.removeAll() }
}
