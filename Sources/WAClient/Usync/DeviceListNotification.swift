import Foundation
import WABinary

/// `<notification type=devices from=user [lid]>` with `<add|remove|update
/// device_hash><device jid [lid]/></…>` children: a user linked or unlinked
/// a device. `device_hash` is the participant hash (v2) of the user's list
/// after the change (facts: whatsmeow's handleDeviceNotification).
public struct DeviceListNotification: Sendable, Equatable {
    public enum Kind: String, Sendable { case add, remove, update }

    public struct Change: Sendable, Equatable {
        public var kind: Kind
        public var device: JID?
        public var deviceHash: String?
    }

    public var user: JID
    public var lid: JID?
    public var changes: [Change]

    /// Most changes read from one notification (a hostile server cannot make us loop).
    public static let maxChanges = 64

    public init(parsing node: Node) throws {
        let ctx = "devices notification"
        guard node.tag == "notification", node.string("type") == "devices" else {
            throw WAClientError(.stanzaMalformed, "\(ctx): not a devices notification")
        }
        user = try node.requiredJID("from", in: ctx).nonAD
        lid = node.jid("lid")?.nonAD
        changes = node.children.prefix(Self.maxChanges).compactMap { child in
            guard let kind = Kind(rawValue: child.tag) else { return nil }
            return Change(kind: kind, device: child.child("device")?.jid("jid"), deviceHash: child.string("device_hash"))
        }
    }
}

/// `<notification type=account_sync><devices dhash><device jid/>…</devices>`: the full,
/// new list of our own user's devices; `dhash` is its participant hash (v2)
/// (facts: whatsmeow's handleOwnDevicesNotification).
public struct OwnDevicesNotification: Sendable, Equatable {
    public var devices: [JID]
    public var hash: String?

    /// Most devices read (WhatsApp allows a phone and a handful of companions).
    public static let maxDevices = 64

    /// Nil when the notification carries no `<devices>` (other account_sync items).
    public init?(parsing node: Node) {
        guard node.tag == "notification", node.string("type") == "account_sync", let list = node.child("devices") else {
            return nil
        }
        devices = list.children("device").prefix(Self.maxDevices).compactMap { $0.jid("jid") }
        hash = list.string("dhash")
    }
}

extension DeviceListCache {
    /// Replaces our own user's list when the notification's hash matches its devices, else drops it.
    @discardableResult
    public mutating func apply(own notification: OwnDevicesNotification, user: JID, now: Date = Date()) -> NotificationOutcome {
        let user = user.nonAD
        guard base.entries[user] != nil else { return .notCached }
        let devices = notification.devices.filter { $0.user == user.user && $0.server == user.server }
        guard let hash = notification.hash, devices.count == notification.devices.count, ParticipantHash.v2(devices) == hash else {
            base.entries[user] = nil
            return .dropped
        }
        var entry = base.entries[user]!
        base.clock += 1
        entry.value.devices = devices
        entry.lastUse = base.clock
        base.entries[user] = entry
        return .updated
    }

    public enum NotificationOutcome: Sendable, Equatable {
        /// The cached list now matches the server's hash.
        case updated
        /// The change could not be applied so that the hash matches: the list is dropped
        /// and the next send asks usync.
        case dropped
        /// Nothing cached for the user: nothing to do (the next send asks usync).
        case notCached
    }

    /// Applies a device-list notification: adds or removes the device in the cached
    /// list, then keeps the list only when its participant hash equals the
    /// notification's `device_hash` (an `update`, or a change without a hash, drops it).
    @discardableResult
    public mutating func apply(_ notification: DeviceListNotification, now: Date = Date()) -> NotificationOutcome {
        guard var entry = base.entries[notification.user] else { return .notCached }
        var devices = entry.value.devices
        var outcome = NotificationOutcome.updated
        for change in notification.changes {
            guard let device = change.device, device.user == notification.user.user, let hash = change.deviceHash else {
                outcome = .dropped
                break
            }
            switch change.kind {
            case .add: if !devices.contains(device) { devices.append(device) }
            case .remove: devices.removeAll { $0 == device }
            case .update: outcome = .dropped
            }
            if outcome == .dropped || ParticipantHash.v2(devices) != hash {
                outcome = .dropped
                break
            }
        }
        guard outcome == .updated else {
            base.entries[notification.user] = nil
            return .dropped
        }
        base.clock += 1
        entry.value.devices = devices
        entry.lastUse = base.clock
        base.entries[notification.user] = entry
        return .updated
    }

    /// A notification about `notification.user` (by phone number, as the server names the user
    /// and hashes its devices) applied to the list cached under its LID `lid`: the change is
    /// checked in phone-number form and the result kept in LID form.
    @discardableResult
    public mutating func apply(_ notification: DeviceListNotification, lid: JID, now: Date = Date()) -> NotificationOutcome {
        applyInPNForm(lid: lid.nonAD, pn: notification.user.nonAD, now: now) { $0.apply(notification, now: now) }
    }

    /// Our own `account_sync` applied to our list cached under our LID.
    @discardableResult
    public mutating func apply(own notification: OwnDevicesNotification, user: JID, lid: JID, now: Date = Date()) -> NotificationOutcome {
        applyInPNForm(lid: lid.nonAD, pn: user.nonAD, now: now) { $0.apply(own: notification, user: user, now: now) }
    }

    private mutating func applyInPNForm(
        lid: JID, pn: JID, now: Date, _ body: (inout DeviceListCache) -> NotificationOutcome
    ) -> NotificationOutcome {
        guard let entry = base.entries[lid] else { return .notCached }
        var scratch = DeviceListCache(capacity: 1, ttl: .infinity)
        var asPN = entry.value
        asPN.user = pn
        asPN.devices = entry.value.devices.map { JID(user: pn.user, device: $0.device, server: pn.server) }
        scratch.store(asPN, now: now)
        let outcome = body(&scratch)
        guard outcome == .updated, let updated = scratch.base.entries[pn] else {
            base.entries[lid] = nil
            return outcome == .notCached ? .notCached : .dropped
        }
        var kept = entry
        kept.value.devices = updated.value.devices.map { JID(user: lid.user, device: $0.device, server: lid.server) }
        base.clock += 1
        kept.lastUse = base.clock
        base.entries[lid] = kept
        return .updated
    }
}
