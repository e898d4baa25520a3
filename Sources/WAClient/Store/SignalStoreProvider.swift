import Foundation
import WASignal

/// The Signal half of a device's store: WASignal's prekey, signed prekey,
/// session, identity and sender key store for the device, and the counter of
/// one-time prekey ids. `InMemoryDeviceStore` adopts it with an
/// `InMemorySignalStore`; the bridge's SQLite store (issue 7) adopts it with a
/// persistent one. `DeviceStore.wipe()` must clear this half too.
public protocol SignalStoreProvider: Sendable {
    /// The device's Signal store; its identity is `record.identityKey`, its
    /// registration id `record.registrationID`, and it holds `record.signedPreKey`.
    func signalStore(for record: DeviceRecord) async throws -> any SignalProtocolStore
    /// `count` fresh one-time prekey ids (1…2^24-1, never handed out twice before wrapping).
    func allocatePreKeyIDs(_ count: Int) async throws -> [UInt32]
}

extension SignedPreKey {
    /// The same key as WASignal's record.
    public var signalRecord: SignedPreKeyRecord {
        SignedPreKeyRecord(id: id, keyPair: keyPair, signature: signature, timestamp: 0)
    }
}

extension SignalStoreProvider where Self: SignalProtocolStore {
    /// A store that is itself the Signal store (the bridge's SQLite session store) hands out itself.
    public func signalStore(for record: DeviceRecord) async throws -> any SignalProtocolStore { self }
}
