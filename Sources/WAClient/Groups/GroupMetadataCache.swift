import Foundation
import WABinary

/// Group metadata per group, so a send does not ask the server every time (whatsmeow keeps
/// a group cache too; asking per send risks its rate limit). An entry goes when a `w:gp2`
/// notification says the group changed, when a send's ack carries another participant
/// hash than ours, or after `ttl` (a safety net for a change we missed). Bounded: at most
/// `capacity` groups, the least recently used evicted. A value type: the messaging actor
/// owns one.
public struct GroupMetadataCache: Sendable {
    public let capacity: Int
    public let ttl: TimeInterval

    struct Entry: Sendable {
        var value: GroupMetadata
        var stored: Date
        var lastUse: UInt64
    }

    var entries: [JID: Entry] = [:]
    var clock: UInt64 = 0

    /// Defaults: 1,000 groups, one day.
    public init(capacity: Int = 1_000, ttl: TimeInterval = 86_400) {
        precondition(capacity > 0)
        self.capacity = capacity
        self.ttl = ttl
    }

    public var count: Int { entries.count }

    /// The metadata of `group` if cached and fresh at `now`.
    public mutating func metadata(of group: JID, now: Date = Date()) -> GroupMetadata? {
        let key = group.nonAD
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

    public mutating func store(_ value: GroupMetadata, now: Date = Date()) {
        clock += 1
        entries[value.jid.nonAD] = Entry(value: value, stored: now, lastUse: clock)
        if entries.count > capacity, let oldest = entries.min(by: { $0.value.lastUse < $1.value.lastUse })?.key {
            entries[oldest] = nil
        }
    }

    /// Drops a group; true when it was cached.
    @discardableResult
    public mutating func invalidate(_ group: JID) -> Bool { entries.removeValue(forKey: group.nonAD) != nil }

    public mutating func removeAll() { entries.removeAll() }
}
