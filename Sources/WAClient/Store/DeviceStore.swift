import Foundation
import WABinary
import WACrypto
import WAProto
import WASignal

/// A Signal signed prekey: id (24 bits on the wire), key pair, and the
/// identity key's XEdDSA signature over the 33-byte serialized public key.
public struct SignedPreKey: Sendable {
    public let id: UInt32
    public let keyPair: Curve25519KeyPair
    public let signature: Data

    public init(id: UInt32, keyPair: Curve25519KeyPair, signature: Data) {
        self.id = id
        self.keyPair = keyPair
        self.signature = signature
    }

    /// A new signed prekey signed by `identity`.
    public static func generate(id: UInt32, signedBy identity: Curve25519KeyPair) throws -> SignedPreKey {
        let pair = Curve25519KeyPair.generate()
        let signature = try XEdDSA.sign(pair.publicKey.signalSerialized, privateKey: identity.privateKey)
        return SignedPreKey(id: id, keyPair: pair, signature: signature)
    }
}

/// Everything one device keeps about itself across restarts (phase 1: the
/// connection layer). Signal prekeys, sessions and sender keys live in the
/// WASignal store protocols, which a full store adopts beside this one.
///
/// `account`, `jid` and `lid` are nil until pairing succeeds; a record
/// without them makes the client register (QR or pairing code), one with
/// them makes it log in.
public struct DeviceRecord: Sendable {
    public var noiseKey: Curve25519KeyPair
    public var identityKey: Curve25519KeyPair
    public var registrationID: UInt32
    public var signedPreKey: SignedPreKey
    public var advSecret: Data
    /// The ADVSignedDeviceIdentity the phone signed and we countersigned (with the account key kept).
    public var account: WAAdv_ADVSignedDeviceIdentity?
    public var jid: JID?
    public var lid: JID?
    public var pushName: String
    /// The platform the phone reported at pairing (`android`, `iphone`, ...).
    public var platform: String
    public var businessName: String

    public init(
        noiseKey: Curve25519KeyPair, identityKey: Curve25519KeyPair, registrationID: UInt32,
        signedPreKey: SignedPreKey, advSecret: Data, account: WAAdv_ADVSignedDeviceIdentity? = nil,
        jid: JID? = nil, lid: JID? = nil, pushName: String = "", platform: String = "", businessName: String = ""
    ) {
        self.noiseKey = noiseKey
        self.identityKey = identityKey
        self.registrationID = registrationID
        self.signedPreKey = signedPreKey
        self.advSecret = advSecret
        self.account = account
        self.jid = jid
        self.lid = lid
        self.pushName = pushName
        self.platform = platform
        self.businessName = businessName
    }

    /// Fresh keys for a device that has never paired.
    public static func generate() -> DeviceRecord {
        let identity = Curve25519KeyPair.generate()
        let regID = Symmetric.randomBytes(2).reduce(UInt32(0)) { $0 << 8 | UInt32($1) } & 0x3FFF + 1
        // Signing a fresh key with a fresh key cannot fail.
        let signed = try! SignedPreKey.generate(id: 1, signedBy: identity)
        return DeviceRecord(
            noiseKey: .generate(), identityKey: identity, registrationID: regID, signedPreKey: signed,
            advSecret: Symmetric.randomBytes(32))
    }

    /// True once pairing stored an account and a JID: the client logs in instead of registering.
    public var isRegistered: Bool { jid != nil && account != nil }
}

extension DeviceRecord: CustomStringConvertible {
    /// Never shows keys.
    public var description: String {
        "DeviceRecord(jid: \(jid?.description ?? "unpaired"), lid: \(lid?.description ?? "-"))"
    }
}

/// What the client needs from a device's storage (phase 1). Implementations
/// must be safe to call from any task. Phase 2 adds WASignal's store
/// protocols (prekeys, sessions, identities, sender keys) beside this one; a
/// full store type conforms to all of them, and `wipe()` clears them too.
public protocol DeviceStore: Sendable {
    /// The stored device, or nil when there is none yet (or after a wipe).
    func loadDevice() async throws -> DeviceRecord?
    /// Replaces the stored device.
    func saveDevice(_ record: DeviceRecord) async throws
    /// Deletes every key and identity of the device (logout). Afterwards `loadDevice()` is nil.
    func wipe() async throws
}

/// A `DeviceStore` in memory, for tests and the simulator's own clients.
public actor InMemoryDeviceStore: DeviceStore, SignalStoreProvider, LIDMappingStore, PrivacyTokenStore, AppStateStore {
    private var record: DeviceRecord?
    private var lidMap = InMemoryLIDMappingStore()
    private var privacy = InMemoryPrivacyTokenStore()
    private var appState = InMemoryAppStateStore()
    private var signal: InMemorySignalStore?
    private var nextPreKeyID: UInt32 = 1
    /// How many times `wipe()` ran (tests check that logout wiped).
    public private(set) var wipeCount = 0

    public init(_ record: DeviceRecord? = nil) { self.record = record }

    public func loadDevice() async throws -> DeviceRecord? { record }
    public func saveDevice(_ record: DeviceRecord) async throws { self.record = record }
    public func wipe() async throws {
        record = nil
        signal = nil
        lidMap = InMemoryLIDMappingStore()
        privacy = InMemoryPrivacyTokenStore()
        appState = InMemoryAppStateStore()
        nextPreKeyID = 1
        wipeCount += 1
    }

    /// The device's Signal store, made from the record's identity, registration id and signed
    /// prekey the first time it is asked for (and again after a wipe).
    public func signalStore(for record: DeviceRecord) async throws -> any SignalProtocolStore {
        if let signal { return signal }
        let store = InMemorySignalStore(
            identity: IdentityKeyPair(keyPair: record.identityKey), registrationID: record.registrationID)
        await store.storeSignedPreKey(record.signedPreKey.signalRecord)
        signal = store
        return store
    }

    public func storeLIDMappings(_ mappings: [LIDMapping]) async throws { await lidMap.storeLIDMappings(mappings) }
    public func lid(forPN pn: JID) async throws -> JID? { await lidMap.lid(forPN: pn) }
    public func pn(forLID lid: JID) async throws -> JID? { await lidMap.pn(forLID: lid) }

    public func storePrivacyTokens(_ tokens: [PrivacyToken]) async throws { await privacy.storePrivacyTokens(tokens) }
    public func privacyToken(for user: JID) async throws -> PrivacyToken? { await privacy.privacyToken(for: user) }
    public func setPrivacyTokenSenderTimestamp(_ timestamp: Date, for user: JID) async throws {
        await privacy.setPrivacyTokenSenderTimestamp(timestamp, for: user)
    }
    public func deleteExpiredPrivacyTokens(before cutoff: Date) async throws -> Int {
        await privacy.deleteExpiredPrivacyTokens(before: cutoff)
    }
    public func nctSalt() async throws -> Data? { await privacy.nctSalt() }
    public func storeNCTSalt(_ salt: Data?) async throws { await privacy.storeNCTSalt(salt) }

    public func storeAppStateSyncKeys(_ keys: [AppStateSyncKey]) async throws { await appState.storeAppStateSyncKeys(keys) }
    public func appStateSyncKey(id: Data) async throws -> AppStateSyncKey? { await appState.appStateSyncKey(id: id) }
    public func appStateVersion(_ collection: String) async throws -> AppStateHashState { await appState.appStateVersion(collection) }
    public func appStateValueMAC(_ collection: String, indexMAC: Data) async throws -> Data? {
        await appState.appStateValueMAC(collection, indexMAC: indexMAC)
    }
    public func commitAppState(_ collection: String, state: AppStateHashState, removed: [Data], added: [AppStateMutationMAC],
                               changes: [AppStateChange]) async throws {
        await appState.commitAppState(collection, state: state, removed: removed, added: added, changes: changes)
    }
    public func appStateContact(_ jid: JID) async throws -> AppStateContact? { await appState.appStateContact(jid) }
    public func appStateContacts() async throws -> [AppStateContact] { await appState.appStateContacts() }
    public func appStateChatSettings(_ jid: JID) async throws -> AppStateChatSettings? { await appState.appStateChatSettings(jid) }
    public func appStateOwnPushName() async throws -> String? { await appState.appStateOwnPushName() }

    public func allocatePreKeyIDs(_ count: Int) async throws -> [UInt32] {
        guard count > 0 else { return [] }
        // 24-bit ids, as the wire carries them; wrap past the top (whatsmeow does the same).
        let ids = (0..<UInt32(count)).map { (nextPreKeyID + $0 - 1) % 0xFF_FFFF + 1 }
        nextPreKeyID = ids.last! % 0xFF_FFFF + 1
        return ids
    }
}
