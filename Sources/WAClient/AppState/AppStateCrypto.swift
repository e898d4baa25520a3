import Foundation
import WACrypto
import WAProto

/// The five keys one app-state sync key expands to (HKDF-SHA256, info "WhatsApp Mutation Keys",
/// 160 bytes: index, value encryption, value MAC, snapshot MAC, patch MAC; whatsmeow keys.go).
public struct AppStateMutationKeys: Sendable {
    public let index, valueEncryption, valueMAC, snapshotMAC, patchMAC: Data

    public init(syncKey: Data) {
        let expanded = Symmetric.hkdfSHA256(inputKeyMaterial: syncKey, info: Data("WhatsApp Mutation Keys".utf8),
                                            outputByteCount: 160)
        func part(_ n: Int) -> Data { Data(expanded[expanded.startIndex + n * 32 ..< expanded.startIndex + (n + 1) * 32]) }
        (index, valueEncryption, valueMAC, snapshotMAC, patchMAC) = (part(0), part(1), part(2), part(3), part(4))
    }
}

/// A collection's integrity state: its version and the LTHash of the value MACs it holds.
public struct AppStateHashState: Sendable, Equatable {
    public var version: UInt64
    public var hash: Data

    public init(version: UInt64 = 0, hash: Data = Data(count: LTHash.size)) {
        self.version = version
        self.hash = hash.count == LTHash.size ? hash : Data(count: LTHash.size)
    }
}

/// The MAC constructions of app-state patches (whatsmeow appstate/hash.go), shared by the decoder
/// and by the simulated phone's encoder.
public enum AppStateMAC {
    static func bigEndian(_ value: UInt64) -> Data { withUnsafeBytes(of: value.bigEndian) { Data($0) } }

    /// HMAC-SHA256(snapshot MAC key, hash ‖ version ‖ collection name).
    public static func snapshotMAC(_ state: AppStateHashState, collection: String, key: Data) -> Data {
        Symmetric.hmacSHA256(key: key, state.hash + bigEndian(state.version) + Data(collection.utf8))
    }

    /// HMAC-SHA256(patch MAC key, snapshot MAC ‖ each value MAC ‖ version ‖ collection name).
    public static func patchMAC(snapshotMAC: Data, valueMACs: [Data], version: UInt64, collection: String, key: Data) -> Data {
        var data = snapshotMAC
        for mac in valueMACs { data += mac }
        return Symmetric.hmacSHA256(key: key, data + bigEndian(version) + Data(collection.utf8))
    }

    /// First 32 bytes of HMAC-SHA512(value MAC key, operation+1 ‖ key id ‖ iv+ciphertext ‖ len(key id)+1).
    public static func valueMAC(operation: WAServerSync_SyncdMutation.SyncdOperation, content: Data, keyID: Data, key: Data) -> Data {
        let data = Data([UInt8(operation.rawValue + 1)]) + keyID + content + bigEndian(UInt64(keyID.count + 1))
        return Data(Symmetric.hmacSHA512(key: key, data).prefix(32))
    }

    /// HMAC-SHA256(index key, the JSON index).
    public static func indexMAC(index: Data, key: Data) -> Data { Symmetric.hmacSHA256(key: key, index) }
}

/// Builds encrypted mutations and patches (whatsmeow appstate/encode.go); WASim's phone uses it to
/// upload real patches. `valueMACs` maps index MAC → value MAC of what the collection holds.
public struct AppStatePatchBuilder: Sendable {
    public let collection: String
    public var state: AppStateHashState
    public var valueMACs: [Data: Data]

    public init(collection: String, state: AppStateHashState = AppStateHashState(), valueMACs: [Data: Data] = [:]) {
        self.collection = collection
        self.state = state
        self.valueMACs = valueMACs
    }

    public struct Change: Sendable {
        public var operation: WAServerSync_SyncdMutation.SyncdOperation
        public var index: [String]
        public var value: WASyncAction_SyncActionValue
        public var version: Int32
        public init(operation: WAServerSync_SyncdMutation.SyncdOperation = .set, index: [String],
                    value: WASyncAction_SyncActionValue, version: Int32) {
            self.operation = operation
            self.index = index
            self.value = value
            self.version = version
        }
    }

    /// The next patch (version + 1) applying `changes`, sealed with `syncKey` (id `keyID`).
    public mutating func patch(_ changes: [Change], keyID: Data, syncKey: Data, deviceIndex: UInt32 = 0) throws -> WAServerSync_SyncdPatch {
        let keys = AppStateMutationKeys(syncKey: syncKey)
        var patch = WAServerSync_SyncdPatch()
        var added: [Data] = [], removed: [Data] = [], macs: [Data] = []
        for change in changes {
            let indexJSON = try JSONSerialization.data(withJSONObject: change.index)
            var action = WASyncAction_SyncActionData()
            action.index = indexJSON
            action.value = change.value
            action.version = change.version
            action.padding = Data()
            let iv = Symmetric.randomBytes(16)
            let plaintext: Data = try action.serializedBytes()
            let content: Data = iv + (try Symmetric.aesCBCEncrypt(plaintext, key: keys.valueEncryption, iv: iv))
            let valueMAC = AppStateMAC.valueMAC(operation: change.operation, content: content, keyID: keyID, key: keys.valueMAC)
            let indexMAC = AppStateMAC.indexMAC(index: indexJSON, key: keys.index)
            var mutation = WAServerSync_SyncdMutation()
            mutation.operation = change.operation
            mutation.record.index.blob = indexMAC
            mutation.record.value.blob = content + valueMAC
            mutation.record.keyID.id = keyID
            patch.mutations.append(mutation)
            macs.append(valueMAC)
            if let previous = valueMACs[indexMAC] { removed.append(previous) }
            if change.operation == .set {
                added.append(valueMAC)
                valueMACs[indexMAC] = valueMAC
            } else {
                valueMACs[indexMAC] = nil
            }
        }
        state.version += 1
        state.hash = LTHash.subtractThenAdd(state.hash, remove: removed, add: added)
        patch.version.version = state.version
        patch.keyID.id = keyID
        patch.deviceIndex = deviceIndex
        patch.snapshotMac = AppStateMAC.snapshotMAC(state, collection: collection, key: keys.snapshotMAC)
        patch.patchMac = AppStateMAC.patchMAC(snapshotMAC: patch.snapshotMac, valueMACs: macs, version: state.version,
                                              collection: collection, key: keys.patchMAC)
        return patch
    }
}
