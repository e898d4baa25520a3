import Foundation
import WABinary
import WAClient
import WAProto
import WASim
import XCTest

/// App-state sync end to end: the simulated phone shares its keys and uploads real encrypted
/// patches, WASim's server keeps them opaque and answers `w:sync:app:state`, the client verifies
/// every MAC and applies what they carry.
private let me = "15558880001", peer = "15558880002"
private func jid(_ number: String) -> JID { JID(user: number, server: JID.userServer) }

final class AppStateSyncTests: XCTestCase {

    private func linked(_ tweak: (inout WASim.Configuration) -> Void = { _ in })
        async throws -> (SimHarness, WAClient, InMemoryDeviceStore, AppStateFeature, EventLog, JID) {
        let harness = try await SimHarness.start(tweak)
        await harness.sim.createPhone(number: peer)
        let store = InMemoryDeviceStore()
        let appState = AppStateFeature(store: store)
        let client = WAClient(store: store, configuration: await harness.configuration(),
                              features: [MessagingFeature(store: store), appState])
        let log = EventLog.watching(client)
        let info = try await within(20) { try await harness.qrLogin(client, phone: me) }
        return (harness, client, store, appState, log, info.jid)
    }

    /// A fresh link gets the keys, then every collection: contacts, our push name, mute/pin/archive
    /// and the NCT salt are in the store; versions match the server's.
    func testFreshLinkReceivesKeysAndAppState() async throws {
        let (harness, client, store, appState, log, _) = try await linked()
        let sim = harness.sim
        try await eventually(15, "contact from app state") { (try? await store.appStateContact(jid(peer))) != nil }
        let contact = try await store.appStateContact(jid(peer))
        XCTAssertEqual(contact?.fullName.hasSuffix("Contact"), true)
        try await eventually(10, "all collections synced") {
            let versions = await appState.versions
            var all = true
            for name in AppStateCollection.all {
                let server = await sim.appStateVersion(of: me, collection: name)
                if server > 0, versions[name] != server { all = false }
            }
            return all && versions.count >= 4
        }
        let pushName = try await store.appStateOwnPushName()
        XCTAssertNotNil(pushName)
        let chat = try await store.appStateChatSettings(jid(peer))
        XCTAssertEqual(chat?.pinned, true)
        XCTAssertEqual(chat?.archived, true)
        XCTAssertEqual(chat?.mutedUntil, .distantFuture)
        let salt = try await store.nctSalt()
        XCTAssertEqual(salt?.count, 32)
        let failures = await appState.failures
        XCTAssertTrue(failures.isEmpty, "\(failures)")
        let events = await log.events
        XCTAssertFalse(events.contains { if case .appStateSyncFailed = $0 { true } else { false } })
        await harness.shutdown(client)
    }

    /// The phone changes a contact and the salt later: the server's `server_sync` notification makes
    /// the client fetch; a salt removal clears it.
    func testLaterPhoneChangeArrivesByNotification() async throws {
        let (harness, client, store, appState, _, _) = try await linked()
        let sim = harness.sim
        try await eventually(15, "initial contacts") { (try? await store.appStateContact(jid(peer))) != nil }
        try await eventually(10, "initial sync done") { await appState.versions["regular_high"] == 1 }
        let newcomer = jid("15558889999")
        try await sim.changeAppState(phone: me, collection: "critical_unblock_low", [.contact(newcomer, fullName: "New Person", firstName: "New")])
        try await eventually(10, "new contact") { (try? await store.appStateContact(newcomer))?.fullName == "New Person" }
        let salt = Data(repeating: 0x42, count: 32)
        try await sim.changeAppState(phone: me, collection: "regular_high", [.nctSalt(salt)])
        try await eventually(10, "new salt") { (try? await store.nctSalt()) == salt }
        try await sim.changeAppState(phone: me, collection: "regular_high", [.nctSalt(nil)])
        try await eventually(10, "salt cleared") {
            let version = await appState.versions["regular_high"]
            return (try? await store.nctSalt()) == nil && version == 3
        }
        try await sim.changeAppState(phone: me, collection: "critical_unblock_low", [.removeContact(newcomer)])
        try await eventually(10, "contact removed") { (try? await store.appStateContact(newcomer)) == nil }

        // The phone names a contact's LID, and a LID chat's number: both pairs reach the LID table
        // (no message was exchanged with either, so nothing else could have told them).
        let learnedAtLink = await appState.lidMappingsLearned
        XCTAssertGreaterThanOrEqual(learnedAtLink, 1, "the initial contacts carry their LIDs")
        let named = jid("15558887777"), namedLID = JID(user: "77001", server: JID.lidServer)
        let chatPN = jid("15558886666"), chatLID = JID(user: "66001", server: JID.lidServer)
        try await sim.changeAppState(phone: me, collection: "critical_unblock_low",
                                     [.contact(named, fullName: "Named", firstName: "N", lid: namedLID)])
        try await sim.changeAppState(phone: me, collection: "regular", [.pnForLidChat(lid: chatLID, pn: chatPN)])
        try await eventually(10, "both mappings stored") {
            let lid = try? await store.lid(forPN: named), pn = try? await store.pn(forLID: chatLID)
            return lid == namedLID && pn == chatPN
        }
        // A pair that is not one number and one LID is ignored, never stored.
        try await sim.changeAppState(phone: me, collection: "regular",
                                     [.pnForLidChat(lid: jid("15558885555"), pn: jid("15558884444"))])
        try await eventually(10, "the bad pair's patch applied") { await appState.versions["regular"] == 2 }
        let bogus = try await store.lid(forPN: jid("15558884444"))
        XCTAssertNil(bogus)
        let learned = await appState.lidMappingsLearned
        XCTAssertEqual(learned, learnedAtLink + 2)
        await harness.shutdown(client)
    }

    /// A patch whose MAC was corrupted is refused with its code and an event; nothing of it is
    /// stored, and the client stays connected (a DM still arrives).
    func testPatchWithBadMACIsRefusedAndTheClientStaysConnected() async throws {
        let (harness, client, store, appState, log, _) = try await linked()
        let sim = harness.sim
        try await eventually(15, "initial sync done") { await appState.versions["critical_unblock_low"] == 1 }
        let intruder = jid("15558887777")
        try await sim.changeAppState(phone: me, collection: "critical_unblock_low",
                                     [.contact(intruder, fullName: "Forged", firstName: "F")], corruptMAC: true)
        try await eventually(10, "sync_failed event") {
            await log.events.contains(.appStateSyncFailed(collection: "critical_unblock_low", version: 1,
                                                          code: WAClientError.Code.appStatePatchMACMismatch.rawValue))
        }
        let forged = try await store.appStateContact(intruder)
        XCTAssertNil(forged, "nothing of a refused patch is applied")
        let versions = await appState.versions
        XCTAssertEqual(versions["critical_unblock_low"], 1)
        let state = await client.state
        XCTAssertEqual(state, .connected)
        let id = try await sim.sendText(from: peer, to: jid(me), text: "still there")
        try await eventually(10, "a DM after the refused patch") {
            await log.events.contains { if case .messageReceived(let m) = $0 { m.id == id } else { false } }
        }
        await harness.shutdown(client)
    }

    /// The phone's first share leaves out the key its patches use: the client asks for it with an
    /// `appStateSyncKeyRequest` peer message, the phone answers with a share, the sync completes.
    func testMissingKeyIsRequestedFromThePhone() async throws {
        let (harness, client, store, appState, _, _) = try await linked { $0.phoneWithholdsAppStateKey = true }
        try await eventually(15, "a key request sent") { await appState.keyRequestsSent >= 1 }
        try await eventually(15, "contacts after the requested key") { (try? await store.appStateContact(jid(peer))) != nil }
        let answered = await harness.sim.appStateKeyRequestsAnswered
        XCTAssertGreaterThanOrEqual(answered, 1, "the phone answered the request")
        await harness.shutdown(client)
    }
}

extension AppStateSyncTests {
    /// The server refuses malformed sync iqs with an error (its own parsing, not the client's).
    func testServerRefusesMalformedSyncIQs() async throws {
        let (harness, client, _, appState, _, _) = try await linked()
        try await eventually(15, "initial sync done") { await appState.versions["critical_unblock_low"] == 1 }
        func ask(_ children: [Node]) async throws -> Node {
            try await client.sendIQ(Node("iq", [
                Attribute("to", .jid(JID.serverJID)), Attribute("xmlns", "w:sync:app:state"), Attribute("type", "set"),
            ], content: .nodes([Node("sync", content: children.isEmpty ? .none : .nodes(children))])))
        }
        func collection(_ name: String, _ version: String?) -> Node {
            var attributes = [Attribute("name", .string(name))]
            if let version { attributes.append(Attribute("version", .string(version))) }
            return Node("collection", attributes)
        }
        for (children, code) in [([], "400"), ([collection("nope", "0")], "400"), ([collection("regular", nil)], "400"),
                                 ([collection("regular", "x")], "400"),
                                 ([collection("regular", "0"), collection("regular", "0")], "400"),
                                 ([collection("critical_unblock_low", "99")], "409")] as [([Node], String)] {
            do {
                _ = try await ask(children)
                XCTFail("a malformed sync iq must be refused: \(children)")
            } catch let error as WAClientError {
                XCTAssertEqual(error.code, .iqError)
                XCTAssertTrue(error.message.contains(code), "\(error) for \(children)")
            }
        }
        let good = try await ask([collection("critical_unblock_low", "0")])
        XCTAssertEqual(good.string("type"), "result")
        XCTAssertEqual(good.child("sync")?.child("collection")?.child("patches")?.children("patch").count, 1)
        let state = await client.state
        XCTAssertEqual(state, .connected)
        await harness.shutdown(client)
    }
}

/// The decoder on its own: built patches round-trip; altered or malformed input is a typed error.
final class AppStateDecoderTests: XCTestCase {
    let keyID = Data([1, 2, 3, 4, 5, 6])
    let syncKey = Data(repeating: 0x11, count: 32)

    private func decoder(_ collection: String = "regular_high", stored: [Data: Data] = [:]) -> AppStateDecoder {
        let keys = AppStateMutationKeys(syncKey: syncKey), keyID = keyID
        return AppStateDecoder(collection: collection, key: { $0 == keyID ? keys : nil }, previousValueMAC: { stored[$0] })
    }

    private func patch(_ builder: inout AppStatePatchBuilder, pinned: Bool = true) throws -> WAServerSync_SyncdPatch {
        var value = WASyncAction_SyncActionValue()
        value.pinAction.pinned = pinned
        return try builder.patch([.init(index: ["pin_v1", "15550001111@s.whatsapp.net"], value: value, version: 5)],
                                 keyID: keyID, syncKey: syncKey)
    }

    func testBuiltPatchesDecodeAndChainTheirHash() async throws {
        var builder = AppStatePatchBuilder(collection: "regular_high")
        let first = try patch(&builder)
        let out = try await decoder().decode(first, current: AppStateHashState())
        XCTAssertEqual(out.state, AppStateHashState(version: 1, hash: LTHash.subtractThenAdd(Data(count: 128), remove: [], add: [out.addedMACs[0].valueMAC])))
        XCTAssertEqual(out.mutations.first?.index, ["pin_v1", "15550001111@s.whatsapp.net"])
        XCTAssertTrue(out.mutations.first?.value.pinAction.pinned == true)
        // The second patch replaces the value: the old value MAC leaves the hash.
        let second = try patch(&builder, pinned: false)
        let stored = [out.addedMACs[0].indexMAC: out.addedMACs[0].valueMAC]
        let out2 = try await decoder(stored: stored).decode(second, current: out.state)
        XCTAssertEqual(out2.state, builder.state)
        // Without the stored MAC the hash differs: the snapshot MAC refuses it.
        do {
            _ = try await decoder().decode(second, current: out.state)
            XCTFail("a hash that does not match must be refused")
        } catch let error as WAClientError { XCTAssertEqual(error.code, .appStateSnapshotMACMismatch) }
    }

    func testAlteredPatchesAreRefusedWithTheirCode() async throws {
        var builder = AppStatePatchBuilder(collection: "regular_high")
        let good = try patch(&builder)
        func expect(_ code: WAClientError.Code, _ alter: (inout WAServerSync_SyncdPatch) -> Void) async {
            var bad = good
            alter(&bad)
            do {
                _ = try await decoder().decode(bad, current: AppStateHashState())
                XCTFail("expected \(code)")
            } catch let error as WAClientError { XCTAssertEqual(error.code, code) } catch { XCTFail("\(error)") }
        }
        await expect(.appStatePatchMACMismatch) { $0.patchMac[0] ^= 1 }
        await expect(.appStateSnapshotMACMismatch) { $0.snapshotMac[0] ^= 1 }
        // The value MAC (last 32 bytes) is what the hash covers: altered, the snapshot MAC refuses it first.
        await expect(.appStateSnapshotMACMismatch) { $0.mutations[0].record.value.blob[$0.mutations[0].record.value.blob.count - 1] ^= 1 }
        await expect(.appStateMalformed) { $0.mutations[0].record.value.blob = Data(count: 10) }
        await expect(.appStateMalformed) { $0.mutations[0].record.index.blob = Data(count: 5) }
        await expect(.appStateKeyMissing) { $0.keyID.id = Data([9]) }
        await expect(.appStateMalformed) { $0.version.version = 0 }
        // A ciphertext byte altered (value MAC intact in the hash): the value MAC refuses it.
        var builder2 = AppStatePatchBuilder(collection: "regular_high")
        let other = try patch(&builder2)
        var tampered = other
        tampered.mutations[0].record.value.blob[20] ^= 1
        do {
            _ = try await decoder().decode(tampered, current: AppStateHashState())
            XCTFail("a tampered value must be refused")
        } catch let error as WAClientError { XCTAssertEqual(error.code, .appStateValueMACMismatch) }
    }

    func testMalformedCollectionNodesAreTypedErrors() throws {
        let garbage = Node("collection", [Attribute("name", "regular_high"), Attribute("version", "1")],
                           content: .nodes([Node("patches", content: .nodes([Node("patch", content: .bytes([0xFF, 0xFF, 0xFF]))]))]))
        XCTAssertThrowsError(try AppStatePatchList(parsing: garbage)) { XCTAssertEqual(($0 as? WAClientError)?.code, .appStateMalformed) }
        let unknown = Node("collection", [Attribute("name", "nope")])
        XCTAssertThrowsError(try AppStatePatchList(parsing: unknown)) { XCTAssertEqual(($0 as? WAClientError)?.code, .appStateMalformed) }
        var limits = AppStateLimits()
        limits.maxPatches = 1
        let two = Node("collection", [Attribute("name", "regular")], content: .nodes([Node("patches", content: .nodes([
            Node("patch", content: .bytes([])), Node("patch", content: .bytes([])),
        ]))]))
        XCTAssertThrowsError(try AppStatePatchList(parsing: two, limits: limits)) { XCTAssertEqual(($0 as? WAClientError)?.code, .appStateMalformed) }
        let empty = Node("collection", [Attribute("name", "regular")])
        XCTAssertEqual(try AppStatePatchList(parsing: empty).patches.count, 0)
    }
}
