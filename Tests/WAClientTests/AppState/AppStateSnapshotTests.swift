import Foundation
import WABinary
import WAClient
import WAProto
import WASim
import XCTest

/// Snapshots and external mutations end to end: the simulated phone puts its snapshots and large
/// patches on WASim's media host as encrypted blobs; a fresh device's first fetch gets the snapshot.
private let me = "15558870001", peer = "15558870002"
private func jid(_ number: String) -> JID { JID(user: number, server: JID.userServer) }

final class AppStateSnapshotTests: XCTestCase {

    private func linked(_ tweak: (inout WASim.Configuration) -> Void = { _ in })
        async throws -> (SimHarness, WAClient, InMemoryDeviceStore, AppStateFeature, EventLog) {
        let harness = try await SimHarness.start(tweak)
        await harness.sim.createPhone(number: peer)
        let store = InMemoryDeviceStore()
        let appState = AppStateFeature(store: store)
        let client = WAClient(store: store, configuration: await harness.configuration(),
                              features: [MessagingFeature(store: store), appState])
        let log = EventLog.watching(client)
        _ = try await within(20) { try await harness.qrLogin(client, phone: me) }
        return (harness, client, store, appState, log)
    }

    /// A fresh link fetches every collection at version 0 and gets snapshots: contacts are stored,
    /// versions match the server's, and a later patch chains onto the snapshot's LTHash.
    func testFreshLinkAppliesSnapshots() async throws {
        let (harness, client, store, appState, log) = try await linked()
        let sim = harness.sim
        try await eventually(15, "contact from the snapshot") { (try? await store.appStateContact(jid(peer))) != nil }
        try await eventually(10, "four collections from snapshots") { await appState.snapshotsApplied >= 4 }
        let served = await sim.appStateSnapshotsAnswered
        XCTAssertGreaterThanOrEqual(served, 4)
        // All five collections were fetched and synced (regular holds nothing: version 0).
        try await eventually(10, "all five collections synced") { await appState.versions.count == AppStateCollection.all.count }
        for name in AppStateCollection.all {
            let fetched = await sim.appStateFetchCount(name)
            XCTAssertGreaterThanOrEqual(fetched, 1, name)
            let server = await sim.appStateVersion(of: me, collection: name)
            let local = try await store.appStateVersion(name)
            XCTAssertEqual(local.version, server, name)
        }
        let chat = try await store.appStateChatSettings(jid(peer))
        XCTAssertEqual(chat?.pinned, true)
        // The next patch's snapshot MAC only verifies if the snapshot's LTHash and value MACs were stored right.
        try await sim.changeAppState(phone: me, collection: "regular_low", [.pin(jid(peer), false)])
        try await eventually(10, "patch after the snapshot") { (try? await store.appStateChatSettings(jid(peer)))?.pinned == false }
        let failures = await appState.failures
        XCTAssertTrue(failures.isEmpty, "\(failures)")
        let events = await log.events
        XCTAssertFalse(events.contains { if case .appStateSyncFailed = $0 { true } else { false } })
        await harness.shutdown(client)
    }

    /// Snapshots sealed with a wrong MAC are refused whole: an event with the code, nothing stored,
    /// the collection stays at version 0, and the device still receives and sends.
    func testCorruptedSnapshotIsRefusedAndTheDeviceStaysUsable() async throws {
        let (harness, client, store, appState, log) = try await linked { $0.corruptAppStateSnapshots = true }
        let sim = harness.sim
        try await eventually(15, "sync_failed for the contacts snapshot") {
            await log.events.contains(.appStateSyncFailed(collection: "critical_unblock_low", version: 0,
                                                          code: WAClientError.Code.appStateSnapshotMACMismatch.rawValue))
        }
        let contact = try await store.appStateContact(jid(peer))
        XCTAssertNil(contact, "nothing of a refused snapshot is applied")
        let state = try await store.appStateVersion("critical_unblock_low")
        XCTAssertEqual(state, AppStateHashState())
        let applied = await appState.snapshotsApplied
        XCTAssertEqual(applied, 0)
        let id = try await sim.sendText(from: peer, to: jid(me), text: "still there")
        try await eventually(10, "a DM after the refused snapshot") {
            await log.events.contains { if case .messageReceived(let m) = $0 { m.id == id } else { false } }
        }
        let sent = try await client.sendMessage(to: jid(peer), { var m = WAE2E_Message(); m.conversation = "reply"; return m }())
        XCTAssertFalse(sent.id.isEmpty)
        await harness.shutdown(client)
    }

    /// A patch over the sim's threshold carries its mutations as an external blob; the client
    /// downloads and applies it like inline mutations.
    func testBigPatchArrivesAsExternalMutations() async throws {
        let (harness, client, store, appState, _) = try await linked()
        let sim = harness.sim
        try await eventually(15, "initial sync done") { await appState.versions["critical_unblock_low"] == 1 }
        let many = (0..<40).map { jid(String(15557770000 + $0)) }
        try await sim.changeAppState(phone: me, collection: "critical_unblock_low",
                                     many.map { .contact($0, fullName: "Bulk \($0.user)", firstName: "B") })
        try await eventually(15, "every bulk contact") {
            (try? await store.appStateContacts())?.filter { $0.fullName.hasPrefix("Bulk ") }.count == many.count
        }
        let external = await appState.externalPatchesApplied
        XCTAssertEqual(external, 1)
        let version = await appState.versions["critical_unblock_low"]
        XCTAssertEqual(version, 2)
        await harness.shutdown(client)
    }
}

/// Snapshot decoding on its own: the MAC over an LTHash recomputed from zero.
final class AppStateSnapshotDecoderTests: XCTestCase {
    let keyID = Data([7, 7, 7, 7, 7, 7])
    let syncKey = Data(repeating: 0x22, count: 32)

    private func decoder() -> AppStateDecoder {
        let keys = AppStateMutationKeys(syncKey: syncKey), keyID = keyID
        return AppStateDecoder(collection: "regular_low", key: { $0 == keyID ? keys : nil }, previousValueMAC: { _ in nil })
    }

    /// Two records made with the patch builder, sealed as a snapshot at version 9.
    private func snapshot() throws -> WAServerSync_SyncdSnapshot {
        var builder = AppStatePatchBuilder(collection: "regular_low")
        var pin = WASyncAction_SyncActionValue(), archive = WASyncAction_SyncActionValue()
        pin.pinAction.pinned = true
        archive.archiveChatAction.archived = true
        let patch = try builder.patch([.init(index: ["pin_v1", "15550001111@s.whatsapp.net"], value: pin, version: 5),
                                       .init(index: ["archive", "15550001111@s.whatsapp.net"], value: archive, version: 3)],
                                      keyID: keyID, syncKey: syncKey)
        var snapshot = WAServerSync_SyncdSnapshot()
        snapshot.version.version = 9
        snapshot.records = patch.mutations.map(\.record)
        snapshot.keyID.id = keyID
        // Computed here from its definition (HMAC-SHA256 of hash ‖ version ‖ name), not by the decoder.
        let hash = LTHash.subtractThenAdd(Data(count: 128), remove: [], add: snapshot.records.map { Data($0.value.blob.suffix(32)) })
        snapshot.mac = AppStateMAC.snapshotMAC(AppStateHashState(version: 9, hash: hash), collection: "regular_low",
                                               key: AppStateMutationKeys(syncKey: syncKey).snapshotMAC)
        return snapshot
    }

    func testSnapshotDecodesWithItsHashAndVersion() async throws {
        let good = try snapshot()
        let out = try await decoder().decodeSnapshot(good)
        XCTAssertEqual(out.state.version, 9)
        XCTAssertEqual(out.mutations.map(\.index[0]), ["pin_v1", "archive"])
        XCTAssertEqual(out.addedMACs.count, 2)
        XCTAssertEqual(out.state.hash, LTHash.subtractThenAdd(Data(count: 128), remove: [], add: out.addedMACs.map(\.valueMAC)))
    }

    func testAlteredSnapshotsAreRefusedWithTheirCode() async throws {
        let good = try snapshot()
        func expect(_ code: WAClientError.Code, _ alter: (inout WAServerSync_SyncdSnapshot) -> Void) async {
            var bad = good
            alter(&bad)
            do {
                _ = try await decoder().decodeSnapshot(bad)
                XCTFail("expected \(code)")
            } catch let error as WAClientError { XCTAssertEqual(error.code, code) } catch { XCTFail("\(error)") }
        }
        await expect(.appStateSnapshotMACMismatch) { $0.mac[0] ^= 1 }
        await expect(.appStateSnapshotMACMismatch) { $0.version.version = 10 }
        await expect(.appStateSnapshotMACMismatch) { $0.records.removeLast() }
        await expect(.appStateMalformed) { $0.records.append($0.records[0]) }
        await expect(.appStateMalformed) { $0.mac = Data() }
        await expect(.appStateKeyMissing) { $0.keyID.id = Data([1]) }
        // A ciphertext byte altered: the hash (over value MACs) still matches, the value MAC refuses it.
        await expect(.appStateValueMACMismatch) { $0.records[0].value.blob[20] ^= 1 }
    }
}
