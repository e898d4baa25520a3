import Foundation
import WACrypto

/// Which way a message goes when an identity's trust is asked for.
public enum IdentityDirection: Sendable {
    case sending, receiving
}

/// Our identity and the identities we have seen for peers.
///
/// A store decides trust. Ours (`InMemorySignalStore`) trusts on first use and
/// refuses a *changed* key until the caller accepts it, so a change is
/// surfaced as `signal.untrusted_identity` carrying an `IdentityChange`,
/// never trusted silently.
public protocol IdentityKeyStore: Sendable {
    func identityKeyPair() async throws -> IdentityKeyPair
    func localRegistrationID() async throws -> UInt32
    func identity(for address: SignalAddress) async throws -> Curve25519PublicKey?
    func isTrustedIdentity(_ key: Curve25519PublicKey, for address: SignalAddress, direction: IdentityDirection) async throws -> Bool
    /// Stores `key` for `address`; true when it replaced a different key.
    @discardableResult
    func saveIdentity(_ key: Curve25519PublicKey, for address: SignalAddress) async throws -> Bool
}

public protocol PreKeyStore: Sendable {
    func loadPreKey(id: UInt32) async throws -> PreKeyRecord?
    func storePreKey(_ record: PreKeyRecord) async throws
    func removePreKey(id: UInt32) async throws
}

public protocol SignedPreKeyStore: Sendable {
    func loadSignedPreKey(id: UInt32) async throws -> SignedPreKeyRecord?
    func storeSignedPreKey(_ record: SignedPreKeyRecord) async throws
}

public protocol SessionStore: Sendable {
    func loadSession(for address: SignalAddress) async throws -> SessionRecord?
    func storeSession(_ record: SessionRecord, for address: SignalAddress) async throws
    func deleteSession(for address: SignalAddress) async throws
    /// Deletes the sessions and trusted identities of every device of one address name (a user
    /// or LID user, `SignalAddress.name`): a contact's identity changed (whatsmeow
    /// notification.go deletes both). Returns the addresses whose session was deleted.
    @discardableResult
    func deleteAllSessionsAndIdentities(named name: String) async throws -> [SignalAddress]
}

public protocol SenderKeyStore: Sendable {
    func loadSenderKey(for name: SenderKeyName) async throws -> SenderKeyRecord?
    func storeSenderKey(_ record: SenderKeyRecord, for name: SenderKeyName) async throws
}

/// Everything a device's Signal layer keeps. Ciphers read from it at the
/// start of an operation and write to it only at the end of a successful
/// one, so one caller at a time per store (the device's actor) is assumed:
/// two decrypts for the same address must not interleave.
public protocol SignalProtocolStore: IdentityKeyStore, PreKeyStore, SignedPreKeyStore, SessionStore, SenderKeyStore,
    PendingPlaintextStore {
    /// Writes all changes of one successful operation together; see
    /// `SignalStoreChanges` (a default applies them one by one).
    func commit(_ changes: SignalStoreChanges) async throws
}
