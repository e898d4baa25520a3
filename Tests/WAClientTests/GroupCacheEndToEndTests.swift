import Foundation
import WABinary
import WAClient
import WASim
import XCTest

/// Group metadata is asked once and cached; a `w:gp2` notification or a participant-hash
/// mismatch in the send's ack drops it (the simulator counts the metadata queries).
final class GroupCacheEndToEndTests: XCTestCase {
    func testMetadataCachedThenDroppedOnNotificationAndOnHashMismatch() async throws {
        let harness = try await SimHarness.start()
        let sim = harness.sim
        let store = InMemoryDeviceStore()
        let messaging = MessagingFeature(store: store)
        let client = WAClient(store: store, configuration: await harness.configuration(), features: [messaging])
        let me = "15550100161", alice = "15550100162", bob = "15550100163", carol = "15550100164"
        let info = try await within(20) { try await harness.qrLogin(client, phone: me) }
        for phone in [alice, bob, carol] { await sim.createPhone(number: phone) }
        try await eventually(10, "prekeys uploaded") { await sim.uploadedPreKeyCount(info.jid) == 812 }
        let group = try await sim.createGroup(creator: alice, participants: [me, bob], subject: "cached")

        let first = try await within(10) { try await client.sendText(to: group, text: "one") }
        let second = try await within(10) { try await client.sendText(to: group, text: "two") }
        var queries = await sim.groupMetadataQueries(group)
        XCTAssertEqual(queries, 1, "the second send used the cached metadata")
        let cached = await messaging.cachedGroup(group)
        XCTAssertEqual(cached?.participants.count, 3)
        for id in [first.id, second.id] {
            try await eventually(5, "bob got \(id)") { await sim.receivedMessages(phone: bob).contains { $0.id == id } }
        }

        // Bob leaves: the server's w:gp2 drops the entry; the next send asks again and skips bob.
        try await sim.removeFromGroup(group, number: bob)
        try await eventually(5, "the notification dropped the metadata") { await messaging.cachedGroup(group) == nil }
        let third = try await within(10) { try await client.sendText(to: group, text: "three") }
        queries = await sim.groupMetadataQueries(group)
        XCTAssertEqual(queries, 2)
        XCTAssertEqual(third.deviceCount, 2, "the key is rotated for alice's phone and our own phone")
        try await eventually(5, "alice got three") { await sim.receivedMessages(phone: alice).contains { $0.id == third.id } }
        let bobGotThird = await sim.receivedMessages(phone: bob).contains { $0.id == third.id }
        XCTAssertFalse(bobGotThird)

        // Carol joins and the notification is lost: the send goes out on the stale list, the
        // server's participant hash differs, the entry goes, the send after asks again.
        try await sim.addToGroup(group, number: carol, notify: false)
        let fourth = try await within(10) { try await client.sendText(to: group, text: "four") }
        queries = await sim.groupMetadataQueries(group)
        XCTAssertEqual(queries, 2, "the stale entry was used")
        XCTAssertNotNil(fourth.phash)
        let afterMismatch = await messaging.cachedGroup(group)
        XCTAssertNil(afterMismatch, "a participant-hash mismatch drops the entry")
        let fifth = try await within(10) { try await client.sendText(to: group, text: "five") }
        queries = await sim.groupMetadataQueries(group)
        XCTAssertEqual(queries, 3)
        try await eventually(5, "carol got five") { await sim.receivedMessages(phone: carol).contains { $0.id == fifth.id } }
        let hashNow = await messaging.cachedGroup(group)
        XCTAssertNotNil(hashNow, "the hashes agree again: the entry stays")
        await harness.shutdown(client)
    }
}
