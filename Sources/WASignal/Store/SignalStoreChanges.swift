import Foundation
import WACrypto

/// Everything one successful encrypt or decrypt writes, handed to the store
/// in one call so a database store can apply it in one transaction (and an
/// actor store in one turn). Nothing is written for a failed operation.
public struct SignalStoreChanges: Sendable {
    public var identities: [(SignalAddress, Curve25519PublicKey)] = []
    public var sessions: [(SignalAddress, SessionRecord)] = []
    public var removedPreKeys: [UInt32] = []
    public var senderKeys: [(SenderKeyName, SenderKeyRecord)] = []
    /// Decrypted payloads to keep until the application took them (see `PendingPlaintextStore`).
    public var pendingPlaintexts: [(PendingPlaintextKey, Data)] = []

    public init() {}
}

extension SignalProtocolStore {
    /// Applies the changes one by one. Stores that can do better (a SQLite
    /// transaction) implement `commit` themselves.
    public func commit(_ changes: SignalStoreChanges) async throws {
        for (address, key) in changes.identities { try await saveIdentity(key, for: address) }
        for (address, record) in changes.sessions { try await storeSession(record, for: address) }
        for id in changes.removedPreKeys { try await removePreKey(id: id) }
        for (name, record) in changes.senderKeys { try await storeSenderKey(record, for: name) }
        for (key, plaintext) in changes.pendingPlaintexts { try await storePendingPlaintext(plaintext, for: key) }
    }
}
