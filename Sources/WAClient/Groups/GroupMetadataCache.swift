import Foundation
import WABinary

/// Group metadata per group, so a send does not ask the server every time (whatsmeow keeps
/// a group cache too; asking per send risks its rate limit). An entry goes when a `w:gp2`
/// notification says the group changed, when a send's ack carries another participant
/// hash than ours, or after `ttl` (a safety net for a change we missed). Bounded: at most
/// `capacity` groups, the least recently used evicted. A value type: the messaging actor
/// owns one.
public struct GroupMetadataCache: Sendable {
    var base: ExpiringLRUCache<GroupMetadata>
    public var capacity: Int { base.capacity }
    public var ttl: TimeInterval { base.ttl }

    /// Defaults: 1,000 groups, one day.
    public init(capacity: Int = 1_000, ttl: TimeInterval = 86_400) {
        base = ExpiringLRUCache(capacity: capacity, ttl: ttl)
    }

    public var count: Int { base.count }

    /// The metadata of `group` if cached and fresh at `now`.
    public mutating func metadata(of group: JID, now: Date = Date()) -> GroupMetadata? { base.value(for: group, now: now) }

    public mutating func store(_ value: GroupMetadata, now: Date = Date()) { base.store(value, for: value.jid, now: now) }

    /// Drops a group; true when it was cached.
    @discardableResult
    public mutating func invalidate(_ group: JID) -> Bool { base.invalidate(group) }

    public mutating func removeAll() { base.removeAll() }
}
