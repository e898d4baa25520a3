import Foundation
import WABinary
import WAClient
import WASim
import XCTest

/// A LID-addressed group (the kind today's WhatsApp makes) against the simulator, whose
/// server refuses a group send addressed in the wrong form: the client sends as its LID
/// device, to the members' LID devices, with `addressing_mode=lid`; phones' messages come
/// from LIDs (with `participant_pn`) and decrypt under the LID sender key.
final class LIDGroupEndToEndTests: XCTestCase {
    func testLIDGroupSendAndReceive() async throws {
        let harness = try await SimHarness.start()
        let sim = harness.sim
        let store = InMemoryDeviceStore()
        let messaging = MessagingFeature(store: store)
        let client = WAClient(store: store, configuration: await harness.configuration(), features: [messaging])
        let log = EventLog.watching(client)
        let me = "15550100261", alice = "15550100262", bob = "15550100263"
        let info = try await within(20) { try await harness.qrLogin(client, phone: me) }
        let alicePhone = await sim.createPhone(number: alice)
        let bobPhone = await sim.createPhone(number: bob)
        let ownLID = try XCTUnwrap(info.lid)
        XCTAssertEqual(ownLID.server, JID.lidServer)
        try await eventually(10, "prekeys uploaded") { await sim.uploadedPreKeyCount(info.jid) == 812 }
        let group = try await sim.createGroup(creator: alice, participants: [me, bob], subject: "lid group")
        let addressing = await sim.group(group)?.addressing
        XCTAssertEqual(addressing, .lid, "new groups are LID groups")

        // Client → LID group: accepted by the server only when addressed by LID.
        let sent = try await within(10) { try await client.sendText(to: group, text: "hello lid") }
        XCTAssertEqual(sent.deviceCount, 3, "alice's and bob's phones and our own phone get the SKDM")
        for phone in [alice, bob, me] {
            try await eventually(5, "\(phone) decrypted") {
                await sim.receivedMessages(phone: phone).contains { $0.id == sent.id && $0.text == "hello lid" && $0.chat == group }
            }
        }
        let atAlice = await sim.receivedMessagesAsAddressed(phone: alice).first { $0.id == sent.id }
        XCTAssertEqual(atAlice?.sender.server, JID.lidServer, "our sender key is our LID device's")
        XCTAssertEqual(atAlice?.sender.user, ownLID.user)
        XCTAssertEqual(atAlice?.sender.device, info.jid.device)
        let cached = await messaging.cachedGroup(group)
        XCTAssertEqual(cached?.addressingMode, .lid)
        XCTAssertNotNil(cached, "our participant hash (over LID devices) matched the server's: the entry stays")
        try await eventually(5, "delivered by alice, named by her LID") {
            await log.statuses(of: sent.id, by: alicePhone.lidUser).contains(.delivered)
        }

        // Phones → LID group: from their LID with participant_pn; decrypted under the LID sender key.
        let fromAlice = try await sim.sendGroupText(from: alice, group: group, text: "hi from alice")
        let fromBob = try await sim.sendGroupText(from: bob, group: group, text: "hi from bob")
        let again = try await sim.sendGroupText(from: alice, group: group, text: "alice again")
        try await eventually(5, "client received three") {
            let ids = await log.received.map(\.id)
            return [fromAlice, fromBob, again].allSatisfy(ids.contains)
        }
        let received = await log.received
        let first = try XCTUnwrap(received.first { $0.id == fromAlice })
        XCTAssertEqual(first.chat, group)
        // Presented by phone number (the table learned it from participant_pn), the LID beside it.
        XCTAssertEqual(first.sender, alicePhone.jid)
        XCTAssertEqual(first.senderLID, alicePhone.lid)
        XCTAssertEqual(first.senderAlt, alicePhone.lid)
        XCTAssertEqual(first.addressingMode, .lid)
        XCTAssertEqual(first.content, .text("hi from alice", context: nil))
        XCTAssertEqual(received.first { $0.id == fromBob }?.sender, bobPhone.jid)
        XCTAssertEqual(received.first { $0.id == fromBob }?.senderLID, bobPhone.lid)
        XCTAssertEqual(received.first { $0.id == again }?.content, .text("alice again", context: nil))

        // A second send: everyone holds our LID sender key; only the skmsg.
        let second = try await within(10) { try await client.sendText(to: group, text: "second") }
        XCTAssertEqual(second.deviceCount, 0)
        try await eventually(5, "bob decrypted the skmsg alone") {
            await sim.receivedMessages(phone: bob).contains { $0.id == second.id && $0.text == "second" }
        }

        // Alice's phone loses its session with our LID device; bob leaves, so our new sender key
        // goes to alice 1:1, which she cannot read: her retry receipt (from her LID) gets a resend
        // under our LID sender key, addressed by LID, and she reads it.
        let ourLIDDevice = JID(user: ownLID.user, device: info.jid.device, server: JID.lidServer)
        try await sim.dropSession(phone: alice, with: ourLIDDevice)
        try await sim.removeFromGroup(group, number: bob)
        try await eventually(5, "the client saw bob leave") { await messaging.cachedGroup(group) == nil }
        let rotated = try await within(10) { try await client.sendText(to: group, text: "after bob") }
        XCTAssertEqual(rotated.deviceCount, 2)
        try await eventually(10, "alice read the resend") {
            await sim.receivedMessages(phone: alice).contains { $0.id == rotated.id && $0.text == "after bob" }
        }
        let retries = await sim.retryReceiptsSent(phone: alice)
        XCTAssertGreaterThanOrEqual(retries, 1)
        let bobGot = await sim.receivedMessages(phone: bob).contains { $0.id == rotated.id }
        XCTAssertFalse(bobGot)
        // The next skmsg decrypts at alice: the resend carried our LID sender key.
        let afterRetry = try await within(10) { try await client.sendText(to: group, text: "after retry") }
        try await eventually(5, "alice read the skmsg after the retry") {
            await sim.receivedMessages(phone: alice).contains { $0.id == afterRetry.id && $0.text == "after retry" }
        }

        // Phone-number groups still work, addressed by phone number.
        let pnGroup = try await sim.createGroup(creator: alice, participants: [me], subject: "old kind", addressing: .phoneNumber)
        let pnSent = try await within(10) { try await client.sendText(to: pnGroup, text: "pn group") }
        try await eventually(5, "alice decrypted the pn group text") {
            await sim.receivedMessages(phone: alice).contains { $0.id == pnSent.id && $0.text == "pn group" }
        }
        let pnAtAlice = await sim.receivedMessages(phone: alice).first { $0.id == pnSent.id }
        XCTAssertEqual(pnAtAlice?.sender, info.jid)
        let pnIncoming = try await sim.sendGroupText(from: alice, group: pnGroup, text: "pn back")
        try await eventually(5, "client received the pn group text") { await log.received.contains { $0.id == pnIncoming } }
        let pnMessage = await log.received.first { $0.id == pnIncoming }
        XCTAssertEqual(pnMessage?.sender, alicePhone.jid)
        XCTAssertEqual(pnMessage?.addressingMode, .phoneNumber)
        await harness.shutdown(client)
    }
}
