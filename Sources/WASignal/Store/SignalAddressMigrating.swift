/// A store that can rename a peer: every session, identity and sender key kept under
/// `fromName:<device>` moves to `toName:<device>` in one step, records unchanged (so the
/// ratchets go on). Used when a phone-number peer turns out to be a LID (whatsmeow's
/// `MigratePNToLID`). An entry already kept under the new name is newer and wins; the old
/// one is dropped either way. Returns how many entries moved.
public protocol SignalAddressMigrating: Sendable {
    @discardableResult
    func migrateAddresses(fromName: String, toName: String) async throws -> Int
}
