import Foundation
import SwiftProtobuf
import WABinary
import WACrypto
import WAProto

/// The app-state collections (whatsmeow appstate/keys.go `AllPatchNames`).
public enum AppStateCollection {
    public static let all = ["critical_block", "critical_unblock_low", "regular_high", "regular", "regular_low"]
}

/// Limits on what one sync answer may make the client decode.
public struct AppStateLimits: Sendable {
    public var maxPatches = 1_000
    public var maxMutationsPerPatch = 5_000
    public var maxRecordBytes = 64 * 1024
    public var maxIndexBytes = 4 * 1024
    /// Largest external blob (snapshot or mutations, plaintext) downloaded; whatsmeow sets none,
    /// this bounds memory: 5,000 records of at most a few KiB each fit.
    public var maxExternalBytes = 16 << 20
    /// Most records one snapshot may hold.
    public var maxSnapshotRecords = 50_000
    public init() {}
}

/// One `<collection>` of a `w:sync:app:state` answer (whatsmeow decode.go ParsePatchList).
public struct AppStatePatchList: Sendable {
    public var name: String
    public var hasMorePatches: Bool
    public var patches: [WAServerSync_SyncdPatch]
    /// The `<snapshot>` reference, when the server sent one (an external blob).
    public var snapshotReference: WAServerSync_ExternalBlobReference?

    public init(parsing node: Node, limits: AppStateLimits = AppStateLimits()) throws {
        guard node.tag == "collection", let name = node.string("name"), AppStateCollection.all.contains(name) else {
            throw WAClientError(.appStateMalformed, "collection without a known name")
        }
        self.name = name
        hasMorePatches = node.string("has_more_patches") == "true"
        if let snapshot = node.child("snapshot") {
            guard let bytes = snapshot.bytes, bytes.count <= limits.maxRecordBytes else {
                throw WAClientError(.appStateMalformed, "snapshot reference missing or too large")
            }
            do { snapshotReference = try WAServerSync_ExternalBlobReference(serializedBytes: bytes) } catch {
                throw WAClientError(.appStateMalformed, "snapshot reference not a protobuf")
            }
        }
        let patchNodes = node.child("patches")?.children("patch") ?? []
        guard patchNodes.count <= limits.maxPatches else { throw WAClientError(.appStateMalformed, "too many patches") }
        patches = try patchNodes.enumerated().map { i, patch in
            guard let bytes = patch.bytes else { throw WAClientError(.appStateMalformed, "patch #\(i + 1) has no bytes") }
            let decoded: WAServerSync_SyncdPatch
            do { decoded = try WAServerSync_SyncdPatch(serializedBytes: bytes) } catch {
                throw WAClientError(.appStateMalformed, "patch #\(i + 1) is not a SyncdPatch")
            }
            // External mutations are downloaded by the caller (`resolvingExternal`) before decoding.
            guard decoded.mutations.count <= limits.maxMutationsPerPatch else {
                throw WAClientError(.appStateMalformed, "patch #\(i + 1) has too many mutations")
            }
            return decoded
        }
    }
}

/// A decoded, verified mutation.
public struct AppStateMutation: Sendable {
    public var operation: WAServerSync_SyncdMutation.SyncdOperation
    public var index: [String]
    public var value: WASyncAction_SyncActionValue
    public var indexMAC: Data
    public var valueMAC: Data
}

/// Verifies and decrypts app-state patches (whatsmeow decode.go/hash.go): LTHash over value MACs,
/// snapshot MAC, patch MAC, value MAC, AES-CBC value, index MAC. Keys and previously stored value
/// MACs come from the caller; nothing is stored here.
public struct AppStateDecoder: Sendable {
    public typealias KeyLookup = @Sendable (Data) async throws -> AppStateMutationKeys?
    public typealias PreviousValueMAC = @Sendable (Data) async throws -> Data?

    public let collection: String
    public let limits: AppStateLimits
    let key: KeyLookup
    let previousValueMAC: PreviousValueMAC

    public init(collection: String, limits: AppStateLimits = AppStateLimits(), key: @escaping KeyLookup,
                previousValueMAC: @escaping PreviousValueMAC) {
        self.collection = collection
        self.limits = limits
        self.key = key
        self.previousValueMAC = previousValueMAC
    }

    public struct Output: Sendable {
        public var state: AppStateHashState
        public var mutations: [AppStateMutation]
        public var removedMACs: [Data]
        public var addedMACs: [AppStateMutationMAC]
    }

    /// Decodes a snapshot (whatsmeow decode.go DecodeSnapshot): every record is a set; the LTHash is
    /// recomputed from zero and must give the snapshot's MAC under the key the snapshot names.
    public func decodeSnapshot(_ snapshot: WAServerSync_SyncdSnapshot) async throws -> Output {
        guard snapshot.hasVersion, snapshot.version.version > 0, snapshot.mac.count == 32, !snapshot.keyID.id.isEmpty else {
            throw WAClientError(.appStateMalformed, "snapshot without version, MAC or key id")
        }
        guard snapshot.records.count <= limits.maxSnapshotRecords else { throw WAClientError(.appStateMalformed, "snapshot has too many records") }
        var valueMACs: [Data] = []
        var indexes: Set<Data> = []
        for (i, record) in snapshot.records.enumerated() {
            let blob = record.value.blob
            guard blob.count >= 16 + 16 + 32, blob.count <= limits.maxRecordBytes, record.index.blob.count == 32 else {
                throw WAClientError(.appStateMalformed, "snapshot record #\(i + 1) has a value or index of a bad size")
            }
            // One value per index: a duplicate would count twice in the LTHash.
            guard indexes.insert(record.index.blob).inserted else {
                throw WAClientError(.appStateMalformed, "snapshot record #\(i + 1) repeats an index")
            }
            valueMACs.append(Data(blob.suffix(32)))
        }
        let state = AppStateHashState(version: snapshot.version.version,
                                      hash: LTHash.subtractThenAdd(Data(count: LTHash.size), remove: [], add: valueMACs))
        let snapshotKeys = try await keys(snapshot.keyID.id)
        guard AppStateMAC.snapshotMAC(state, collection: collection, key: snapshotKeys.snapshotMAC) == snapshot.mac else {
            throw WAClientError(.appStateSnapshotMACMismatch, "snapshot v\(state.version): LTHash does not match its MAC")
        }
        var output = Output(state: state, mutations: [], removedMACs: [], addedMACs: [])
        for (i, record) in snapshot.records.enumerated() {
            var mutation = WAServerSync_SyncdMutation()
            mutation.operation = .set
            mutation.record = record
            let decoded = try await decode(mutation, number: i + 1)
            output.addedMACs.append(AppStateMutationMAC(indexMAC: decoded.indexMAC, valueMAC: decoded.valueMAC))
            output.mutations.append(decoded)
        }
        return output
    }

    /// The key ids a snapshot needs that `key` does not know.
    public func missingKeyIDs(_ snapshot: WAServerSync_SyncdSnapshot) async throws -> [Data] {
        var ids: [Data] = []
        for id in [snapshot.keyID.id] + snapshot.records.map(\.keyID.id) where !ids.contains(id) {
            if try await key(id) == nil { ids.append(id) }
        }
        return ids
    }

    /// The key ids the patches need that `key` does not know (whatsmeow GetMissingKeyIDs).
    public func missingKeyIDs(_ patches: [WAServerSync_SyncdPatch]) async throws -> [Data] {
        var ids: [Data] = []
        for patch in patches {
            for id in [patch.keyID.id] + patch.mutations.map(\.record.keyID.id) where !ids.contains(id) {
                if try await key(id) == nil { ids.append(id) }
            }
        }
        return ids
    }

    private func keys(_ id: Data) async throws -> AppStateMutationKeys {
        guard let keys = try await key(id) else { throw WAClientError(.appStateKeyMissing, "sync key not held") }
        return keys
    }

    /// Decodes one patch on top of `current` (the patch's version must be later).
    public func decode(_ patch: WAServerSync_SyncdPatch, current: AppStateHashState) async throws -> Output {
        let version = patch.version.version
        guard version > current.version else { throw WAClientError(.appStateMalformed, "patch v\(version) not after v\(current.version)") }
        // Value MACs first: the hash update needs them before anything decrypts.
        var valueMACs: [Data] = []
        for (i, mutation) in patch.mutations.enumerated() {
            let blob = mutation.record.value.blob
            guard blob.count >= 16 + 16 + 32, blob.count <= limits.maxRecordBytes,
                  mutation.record.index.blob.count == 32 else {
                throw WAClientError(.appStateMalformed, "mutation #\(i + 1) has a value or index of a bad size")
            }
            valueMACs.append(Data(blob.suffix(32)))
        }
        var added: [Data] = [], removed: [Data] = []
        for (i, mutation) in patch.mutations.enumerated() {
            let indexMAC = mutation.record.index.blob
            if mutation.operation == .set { added.append(valueMACs[i]) }
            // The previous value of this index: earlier in the same patch, else stored.
            if let earlier = (0..<i).reversed().first(where: { patch.mutations[$0].record.index.blob == indexMAC }) {
                if patch.mutations[earlier].operation == .set { removed.append(valueMACs[earlier]) }
            } else if let stored = try await previousValueMAC(indexMAC) {
                removed.append(stored)
            }
        }
        var state = current
        state.version = version
        state.hash = LTHash.subtractThenAdd(current.hash, remove: removed, add: added)
        let patchKeys = try await keys(patch.keyID.id)
        guard AppStateMAC.snapshotMAC(state, collection: collection, key: patchKeys.snapshotMAC) == patch.snapshotMac else {
            throw WAClientError(.appStateSnapshotMACMismatch, "patch v\(version): LTHash does not match its snapshot MAC")
        }
        let patchMAC = AppStateMAC.patchMAC(snapshotMAC: patch.snapshotMac, valueMACs: valueMACs, version: version,
                                            collection: collection, key: patchKeys.patchMAC)
        guard patchMAC == patch.patchMac else { throw WAClientError(.appStatePatchMACMismatch, "patch v\(version): patch MAC") }
        var output = Output(state: state, mutations: [], removedMACs: [], addedMACs: [])
        for (i, mutation) in patch.mutations.enumerated() {
            let decoded = try await decode(mutation, number: i + 1)
            if mutation.operation == .remove {
                output.removedMACs.append(decoded.indexMAC)
                output.addedMACs.removeAll { $0.indexMAC == decoded.indexMAC }
            } else {
                output.addedMACs.removeAll { $0.indexMAC == decoded.indexMAC }
                output.addedMACs.append(AppStateMutationMAC(indexMAC: decoded.indexMAC, valueMAC: decoded.valueMAC))
            }
            output.mutations.append(decoded)
        }
        return output
    }

    func decode(_ mutation: WAServerSync_SyncdMutation, number: Int) async throws -> AppStateMutation {
        let keyID = mutation.record.keyID.id
        let keys = try await keys(keyID)
        let blob = mutation.record.value.blob
        let content = Data(blob.dropLast(32)), valueMAC = Data(blob.suffix(32))
        guard AppStateMAC.valueMAC(operation: mutation.operation, content: content, keyID: keyID, key: keys.valueMAC) == valueMAC else {
            throw WAClientError(.appStateValueMACMismatch, "mutation #\(number): value MAC")
        }
        let plaintext: Data
        do {
            plaintext = try Symmetric.aesCBCDecrypt(content.dropFirst(16), key: keys.valueEncryption, iv: content.prefix(16))
        } catch let error as WACryptoError {
            throw WAClientError(.appStateDecryptFailed, "mutation #\(number) did not decrypt", underlying: error.code)
        }
        let action: WASyncAction_SyncActionData
        do { action = try WASyncAction_SyncActionData(serializedBytes: plaintext) } catch {
            throw WAClientError(.appStateMalformed, "mutation #\(number) is not a SyncActionData")
        }
        let indexMAC = mutation.record.index.blob
        guard AppStateMAC.indexMAC(index: action.index, key: keys.index) == indexMAC else {
            throw WAClientError(.appStateIndexMACMismatch, "mutation #\(number): index MAC")
        }
        guard action.index.count <= limits.maxIndexBytes,
              let index = (try? JSONSerialization.jsonObject(with: action.index)) as? [String], !index.isEmpty else {
            throw WAClientError(.appStateMalformed, "mutation #\(number): index is not a JSON array of strings")
        }
        return AppStateMutation(operation: mutation.operation, index: index, value: action.value, indexMAC: indexMAC,
                                valueMAC: valueMAC)
    }
}
