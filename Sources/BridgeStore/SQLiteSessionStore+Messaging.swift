import Foundation
import WAClient
import WASignal

/// The SQLite session store is its own Signal store (`signalStore(for:)` from
/// the protocol extension), so `MessagingFeature(store:)` takes it directly.
extension SQLiteSessionStore: SignalStoreProvider {
    /// New one-time prekey ids follow the highest one stored (24-bit, wrapping to 1).
    /// A consumed key's row is deleted, so after the highest one is consumed its id can be
    /// handed out again; a peer still holding that old bundle then fails once and recovers
    /// through a retry receipt. A persistent counter in the account row would close this.
    public func allocatePreKeyIDs(_ count: Int) async throws -> [UInt32] {
        guard count > 0 else { return [] }
        let start = (try await maxPreKeyID() ?? 0) % 0xFF_FFFF + 1
        return (0..<UInt32(count)).map { (start + $0 - 1) % 0xFF_FFFF + 1 }
    }
}
