import Foundation
import WACrypto

/// A `SignalProtocolStore` in memory: for tests, benchmarks and the
/// simulator. An actor, so it is the one owner of its dictionaries.
///
/// Trust: first use trusts; a different key for a known address is refused
/// until `acceptIdentity` (or `saveIdentity`) records it.
public actor InMemorySignalStore: SignalProtocolStore, SignalAddressMigrating {
    private let identity: IdentityKeyPair
    private let registrationID: UInt32
    private var identities: [SignalAddress: Curve25519PublicKey] = [:]
    private var preKeys: [UInt32: PreKeyRecord] = [:]
    private var signedPreKeys: [UInt32: SignedPreKeyRecord] = [:]
    private var sessions: [SignalAddress: SessionRecord] = [:]
    private var senderKeys: [SenderKeyName: SenderKeyRecord] = [:]
    /// Kept plaintexts with their storing time, oldest first.
    private var pending: [(key: PendingPlaintextKey, plaintext: Data, stored: Date)] = []

    public init(identity: IdentityKeyPair = .generate(), registrationID: UInt32 = KeyHelper.generateRegistrationID()) {
        self.identity = identity
        self.registrationID = registrationID
    }

    // MARK: Identity

    public func identityKeyPair() -> IdentityKeyPair { identity }
    public func localRegistrationID() -> UInt32 { registrationID }
    public func identity(for address: SignalAddress) -> Curve25519PublicKey? { identities[address] }

    public func isTrustedIdentity(_ key: Curve25519PublicKey, for address: SignalAddress, direction: IdentityDirection) -> Bool {
        guard let known = identities[address] else { return true }
        return known == key
    }

    @discardableResult
    public func saveIdentity(_ key: Curve25519PublicKey, for address: SignalAddress) -> Bool {
        let old = identities.updateValue(key, forKey: address)
        return old != nil && old != key
    }

    /// The caller's answer to an `IdentityChange`: trust the new key from now on.
    public func acceptIdentity(_ change: IdentityChange) {
        identities[change.address] = change.newKey
    }

    // MARK: Prekeys

    public func loadPreKey(id: UInt32) -> PreKeyRecord? { preKeys[id] }
    public func storePreKey(_ record: PreKeyRecord) { preKeys[record.id] = record }
    public func removePreKey(id: UInt32) { preKeys[id] = nil }
    public var preKeyCount: Int { preKeys.count }

    public func loadSignedPreKey(id: UInt32) -> SignedPreKeyRecord? { signedPreKeys[id] }
    public func storeSignedPreKey(_ record: SignedPreKeyRecord) { signedPreKeys[record.id] = record }

    // MARK: Sessions and sender keys

    public func loadSession(for address: SignalAddress) -> SessionRecord? { sessions[address] }
    public func storeSession(_ record: SessionRecord, for address: SignalAddress) { sessions[address] = record }
    public func deleteSession(for address: SignalAddress) { sessions[address] = nil }
    @discardableResult
    public func deleteAllSessionsAndIdentities(named name: String) -> [SignalAddress] {
        let gone = sessions.keys.filter { $0.name == name }
        for address in gone { sessions[address] = nil }
        for address in identities.keys where address.name == name { identities[address] = nil }
        return gone
    }

    /// All changes in one actor turn: no other call sees half of them.
    public func commit(_ changes: SignalStoreChanges) {
        for (address, key) in changes.identities { identities[address] = key }
        for (address, record) in changes.sessions { sessions[address] = record }
        for id in changes.removedPreKeys { preKeys[id] = nil }
        for (name, record) in changes.senderKeys { senderKeys[name] = record }
        for (key, plaintext) in changes.pendingPlaintexts { storePendingPlaintext(plaintext, for: key) }
    }

    // MARK: Pending plaintexts

    public func loadPendingPlaintext(_ key: PendingPlaintextKey) -> Data? {
        pending.last { $0.key == key }?.plaintext
    }

    public func storePendingPlaintext(_ plaintext: Data, for key: PendingPlaintextKey) {
        pending.removeAll { $0.key == key }
        pending.append((key, plaintext, Date()))
    }

    public func removePendingPlaintexts(stanza: String) {
        pending.removeAll { $0.key.stanza == stanza }
    }

    @discardableResult
    public func prunePendingPlaintexts(keepingNewest: Int, storedBefore: Date) -> Int {
        let before = pending.count
        pending.removeAll { $0.stored < storedBefore }
        if pending.count > max(0, keepingNewest) { pending.removeFirst(pending.count - max(0, keepingNewest)) }
        return before - pending.count
    }

    public var pendingPlaintextCount: Int { pending.count }

    @discardableResult
    public func migrateAddresses(fromName: String, toName: String) -> Int {
        guard fromName != toName else { return 0 }
        var moved = 0
        func renamed(_ address: SignalAddress) -> SignalAddress? {
            address.name == fromName ? SignalAddress(name: toName, deviceID: address.deviceID) : nil
        }
        for (address, record) in sessions {
            guard let target = renamed(address) else { continue }
            sessions[address] = nil
            if sessions[target] == nil { sessions[target] = record; moved += 1 }
        }
        for (address, key) in identities {
            guard let target = renamed(address) else { continue }
            identities[address] = nil
            if identities[target] == nil { identities[target] = key; moved += 1 }
        }
        for (name, record) in senderKeys {
            guard let target = renamed(name.sender) else { continue }
            senderKeys[name] = nil
            let newName = SenderKeyName(groupID: name.groupID, sender: target)
            if senderKeys[newName] == nil { senderKeys[newName] = record; moved += 1 }
        }
        return moved
    }

    public func loadSenderKey(for name: SenderKeyName) -> SenderKeyRecord? { senderKeys[name] }
    public func storeSenderKey(_ record: SenderKeyRecord, for name: SenderKeyName) { senderKeys[name] = record }
}
