import Foundation
import WABinary
import WAProto

/// The server's app-state store (whatsmeow appstate.go from the other side): per account and
/// collection, the version and the patches as the phone uploaded them, opaque (the server never
/// holds the keys). It reads only what it must (each patch's version) with its own checks, never
/// the client's decoder, and tells the account's linked devices with `server_sync` when a
/// collection changes.
struct SimAppStateCollection: Sendable {
    var version: UInt64 = 0
    /// Patch bytes by version, oldest first.
    var patches: [(version: UInt64, bytes: Data)] = []
    /// The phone's latest snapshot: its version and the `ExternalBlobReference` (bytes) of the blob
    /// the phone encrypted and put on the media host (the server holds no keys, so it cannot make one).
    var snapshot: (version: UInt64, reference: Data)?
}

extension WASim {
    static let appStateCollections: Set<String> = ["critical_block", "critical_unblock_low", "regular_high", "regular", "regular_low"]
    static let appStatePatchesPerAnswer = 50
    static let appStateMaxPatchBytes = 256 * 1024

    /// Stores a patch the phone of `number` uploaded; its version must be the collection's next.
    func storeAppStatePatch(_ bytes: Data, collection: String, account number: String, snapshot: Data? = nil,
                            excluding: JID? = nil) async throws(ServerPreKeys.Refusal) {
        guard Self.appStateCollections.contains(collection) else { throw .badRequest("unknown collection") }
        guard bytes.count <= Self.appStateMaxPatchBytes,
              let patch = try? WAServerSync_SyncdPatch(serializedBytes: bytes), patch.hasVersion else {
            throw .badRequest("patch is not a SyncdPatch with a version")
        }
        var stored = appStates[number, default: [:]][collection] ?? SimAppStateCollection()
        guard patch.version.version == stored.version + 1 else { throw .conflict("patch version is not the next") }
        stored.version = patch.version.version
        stored.patches.append((stored.version, bytes))
        if let snapshot {
            // Only what the server can check without keys: a reference to a blob on a media host.
            guard snapshot.count <= 4096, let reference = try? WAServerSync_ExternalBlobReference(serializedBytes: snapshot),
                  reference.directPath.hasPrefix("/"), reference.fileEncSha256.count == 32 else {
                throw .badRequest("snapshot is not an ExternalBlobReference")
            }
            stored.snapshot = (stored.version, snapshot)
        }
        appStates[number, default: [:]][collection] = stored
        let note = Node("notification", [
            Attribute("from", .jid(.serverJID)), Attribute("type", "server_sync"),
            Attribute("id", .string(String(UInt64.random(in: 1...UInt64.max)))), Attribute("t", .string(String(nowSeconds))),
        ], content: .nodes([Node("collection", [
            Attribute("name", .string(collection)), Attribute("version", .string(String(stored.version))),
        ])]))
        for device in linkedDevices(of: number) where device != excluding { await deliver(note, to: device) }
    }

    /// `<iq xmlns=w:sync:app:state type=set><sync><collection name version return_snapshot/>…`:
    /// each asked collection's patches after `version` (a version-0 fetch with `return_snapshot` gets the latest snapshot first).
    func appStateAnswer(_ iq: Node, from device: JID) throws(ServerPreKeys.Refusal) -> Node {
        guard iq.string("type") == "set", let sync = iq.child("sync") else { throw .badRequest("sync iq without <sync>") }
        let asked = sync.children("collection")
        guard !asked.isEmpty, asked.count <= Self.appStateCollections.count, sync.children.count == asked.count else {
            throw .badRequest("sync iq without collections")
        }
        var answers: [Node] = []
        var seen: Set<String> = []
        for collection in asked {
            guard let name = collection.string("name"), Self.appStateCollections.contains(name), seen.insert(name).inserted,
                  let versionText = collection.string("version"), let version = UInt64(versionText) else {
                throw .badRequest("collection without a known name or a version")
            }
            let stored = appStates[device.user]?[name] ?? SimAppStateCollection()
            guard version <= stored.version else { throw .conflict("version ahead of the server") }
            appStateFetches[name, default: 0] += 1
            // A fresh device asking for a snapshot gets the latest one and only the patches after it.
            var snapshotNode: Node?
            var from = version
            if version == 0, collection.string("return_snapshot") == "true", configuration.appStateSnapshots,
               let snapshot = stored.snapshot {
                snapshotNode = Node("snapshot", content: .bytes([UInt8](snapshot.reference)))
                from = snapshot.version
                appStateSnapshotsServed += 1
            }
            let after = stored.patches.filter { $0.version > from }
            let sent = after.prefix(Self.appStatePatchesPerAnswer)
            var attributes = [Attribute("name", .string(name)), Attribute("version", .string(String(stored.version)))]
            if after.count > sent.count { attributes.append(Attribute("has_more_patches", "true")) }
            let patches = sent.map { Node("patch", content: .bytes([UInt8]($0.bytes))) }
            var children: [Node] = snapshotNode.map { [$0] } ?? []
            if !patches.isEmpty { children.append(Node("patches", content: .nodes(patches))) }
            answers.append(Node("collection", attributes, content: children.isEmpty ? .none : .nodes(children)))
        }
        return Node("iq", [
            Attribute("from", .jid(.serverJID)), Attribute("type", "result"), Attribute("id", .string(iq.string("id") ?? "")),
        ], content: .nodes([Node("sync", content: .nodes(answers))]))
    }

    /// Version-0 fetches answered with a snapshot (tests).
    public var appStateSnapshotsAnswered: Int { appStateSnapshotsServed }
    /// Sync iqs that asked for `collection`, over all accounts (tests).
    public func appStateFetchCount(_ collection: String) -> Int { appStateFetches[collection] ?? 0 }

    /// The stored version of `collection` of `number`'s account (tests).
    public func appStateVersion(of number: String, collection: String) -> UInt64 { appStates[number]?[collection]?.version ?? 0 }
}

extension ServerPreKeys.Refusal {
    static func conflict(_ reason: String) -> Self { Self(code: 409, text: "conflict", reason: reason) }
}
