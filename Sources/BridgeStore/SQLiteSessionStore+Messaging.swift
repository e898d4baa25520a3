import Foundation
import WAClient
import WASignal

/// The SQLite session store is its own Signal store (`signalStore(for:)` from
/// the protocol extension), so `MessagingFeature(store:)` takes it directly.
extension SQLiteSessionStore: SignalStoreProvider {
    /// New one-time prekey ids from a counter stored in `session.sqlite`
    /// (`reservePreKeyIDs`), so a restart never reuses an id the server may still hand out.
    public func allocatePreKeyIDs(_ count: Int) async throws -> [UInt32] {
        try await reservePreKeyIDs(count)
    }
}
