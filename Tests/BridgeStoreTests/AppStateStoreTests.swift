import Foundation
import WABinary
import WAClient
import XCTest
@testable import BridgeStore

/// App-state keys, versions, MACs and the applied view in `session.sqlite` (v6), on real files.
final class AppStateStoreTests: XCTestCase {
    let bob = JID(user: "15550003333", server: JID.userServer)

    func testKeysAndStateRoundTripSealedAcrossAReopenAndLeaveWithAWipe() async throws {
        let dir = try makeTemporaryDirectory(self)
        let master = MasterKey.generate()
        var store = try openStore(dir, masterKey: master)
        let id = try DeviceID("appstate")
        try await store.createDevice(id: id)
        var keys = try await store.device(id).keys
        let keyData = Data((0..<32).map { UInt8($0 ^ 0xC3) })
        let keyID = Data([0xAB, 0xCD, 0xEF, 0x01, 0x02, 0x03])
        try await keys.storeAppStateSyncKeys([AppStateSyncKey(id: keyID, data: keyData, fingerprint: Data([1]), timestamp: 1_796_000_000_000)])
        let hash = Data((0..<128).map { UInt8($0) })
        let indexMAC = Data(repeating: 0x11, count: 32), valueMAC = Data(repeating: 0x22, count: 32)
        let name = "Zelda Quintessence"
        try await keys.commitAppState("critical_unblock_low", state: AppStateHashState(version: 7, hash: hash), removed: [],
                                      added: [AppStateMutationMAC(indexMAC: indexMAC, valueMAC: valueMAC)],
                                      changes: [.contact(AppStateContact(jid: bob, fullName: name, firstName: "Zelda")),
                                                .pushName("Wobbly Pushname"), .pin(bob, true),
                                                .mute(bob, until: Date(timeIntervalSince1970: 1_796_000_000))])

        store.closeAll()
        let raw = try rawBytes(of: dir.appendingPathComponent("data/devices/appstate/session.sqlite"))
        XCTAssertNil(raw.range(of: keyData), "the sync key is sealed on disk")
        XCTAssertNil(raw.range(of: Data(name.utf8)), "contact names are sealed on disk")
        XCTAssertNil(raw.range(of: Data("Wobbly Pushname".utf8)), "our push name is sealed on disk")

        store = try openStore(dir, masterKey: master)
        keys = try await store.device(id).keys
        let loaded = try await keys.appStateSyncKey(id: keyID)
        XCTAssertEqual(loaded?.data, keyData)
        XCTAssertEqual(loaded?.timestamp, 1_796_000_000_000)
        let missing = try await keys.appStateSyncKey(id: Data([9]))
        XCTAssertNil(missing)
        let state = try await keys.appStateVersion("critical_unblock_low")
        XCTAssertEqual(state, AppStateHashState(version: 7, hash: hash))
        let fresh = try await keys.appStateVersion("regular")
        XCTAssertEqual(fresh, AppStateHashState())
        let mac = try await keys.appStateValueMAC("critical_unblock_low", indexMAC: indexMAC)
        XCTAssertEqual(mac, valueMAC)
        let contact = try await keys.appStateContact(bob)
        XCTAssertEqual(contact?.fullName, name)
        let contacts = try await keys.appStateContacts()
        XCTAssertEqual(contacts.count, 1)
        let pushName = try await keys.appStateOwnPushName()
        XCTAssertEqual(pushName, "Wobbly Pushname")
        let chat = try await keys.appStateChatSettings(bob)
        XCTAssertEqual(chat, AppStateChatSettings(jid: bob, mutedUntil: Date(timeIntervalSince1970: 1_796_000_000), pinned: true))

        // A later patch replaces the value (its MAC leaves) and removes the contact.
        try await keys.commitAppState("critical_unblock_low", state: AppStateHashState(version: 8, hash: hash), removed: [indexMAC],
                                      added: [], changes: [.contactRemoved(bob), .mute(bob, until: nil)])
        let gone = try await keys.appStateValueMAC("critical_unblock_low", indexMAC: indexMAC)
        XCTAssertNil(gone)
        let removed = try await keys.appStateContact(bob)
        XCTAssertNil(removed)
        let unmuted = try await keys.appStateChatSettings(bob)
        XCTAssertNil(unmuted?.mutedUntil)
        XCTAssertEqual(unmuted?.pinned, true)

        // Logout wipes it all.
        try await keys.wipe()
        let afterWipe = try await keys.appStateSyncKey(id: keyID)
        XCTAssertNil(afterWipe)
        let versionAfterWipe = try await keys.appStateVersion("critical_unblock_low")
        XCTAssertEqual(versionAfterWipe.version, 0)
    }
}
