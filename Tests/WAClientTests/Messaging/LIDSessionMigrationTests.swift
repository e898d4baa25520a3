import Foundation
import WABinary
import WAClient
import WASignal
import XCTest

/// PN → LID: a peer we talked to by number starts writing from its LID (with `sender_pn`).
/// Its session moves to the LID address with the ratchet intact, so the next plain `msg`
/// decrypts; without the move it would not.
final class LIDSessionMigrationTests: XCTestCase {
    func testAMovedSessionKeepsDecryptingLIDAddressedMessages() async throws {
        let server = FakeServer()
        let bob0 = try await Party.make("15550002222", device: 0)
        let alice = try await Party.make("15550001111", device: 1)
        for party in [bob0, alice] { try await server.register(party) }
        var receiver = bob0.receiver()
        let first = try await sendDirect(alice, to: bob0.user, text("by number"), id: "3EB0M1", server: server).1
        _ = try expectMessage(try await receiver.receive(try XCTUnwrap(first[bob0.device])))
        // Bob answers, so Alice's session is acknowledged and her next message is a plain msg.
        let back = try await sendDirect(bob0, to: alice.user, text("ok"), id: "3EB0M9", server: server).1
        var aliceReceiver = alice.receiver()
        _ = try expectMessage(try await aliceReceiver.receive(try XCTUnwrap(back[alice.device])))

        // The same session, now delivered LID-addressed.
        let aliceLID = JID(user: "100000000000001", device: 1, server: JID.lidServer)
        let secondDelivered = try await sendDirect(alice, to: bob0.user, text("by LID"), id: "3EB0M2", server: server).1
        var second = try XCTUnwrap(secondDelivered[bob0.device])
        XCTAssertEqual(second.child("enc")?.string("type"), "msg")
        second["from"] = .jid(aliceLID)
        second["sender_pn"] = .jid(alice.user)
        second = try wire(second)
        guard case .undecryptable = try await receiver.receive(second) else {
            return XCTFail("without the move there is no session under the LID")
        }
        let moved = await bob0.store.migrateAddresses(fromName: alice.device.signalAddressUser, toName: aliceLID.signalAddressUser)
        XCTAssertEqual(moved, 2, "session and identity")
        let (message, _) = try expectMessage(try await receiver.receive(second))
        XCTAssertEqual(message.content, .text("by LID", context: nil))
        XCTAssertEqual(message.sender, aliceLID)
        XCTAssertEqual(message.senderAlt, alice.device, "sender_pn names the user; the device is the sender's")
    }

    func testARetryIsFoundByIDWhateverAddressTheReceiptNames() {
        var recent = RecentMessageCache(capacity: 4)
        recent.insert(text("sent to the number"), chat: JID(user: "15550002222", server: JID.userServer), id: "3EB0C1")
        // The retry receipt comes from the peer's LID: the id alone finds the message.
        let entry = recent.entry(id: "3EB0C1")
        XCTAssertEqual(entry?.message, text("sent to the number"))
        XCTAssertEqual(entry?.chat, JID(user: "15550002222", server: JID.userServer))
        XCTAssertNotNil(recent.message(chat: JID(user: "100000000000002", server: JID.lidServer), id: "3EB0C1"))
    }

    func testBadAddressingAttributesAreTypedErrors() throws {
        let from = JID(user: "100000000000001", device: 1, server: JID.lidServer)
        let cases: [[Attribute]] = [
            [Attribute("from", .jid(from)), Attribute("sender_pn", "not a jid")],
            [Attribute("from", .jid(from)), Attribute("sender_pn", .jid(JID(user: "1", server: JID.lidServer)))],
            [Attribute("from", .jid(JID(user: "15550001111", server: JID.userServer))), Attribute("sender_lid", .jid(JID(user: "1", server: JID.groupServer)))],
            [Attribute("from", .jid(from)), Attribute("recipient", .jid(from)), Attribute("peer_recipient_pn", "x@")],
            [Attribute("from", .jid(JID(user: "1203", server: JID.groupServer))), Attribute("participant", .jid(from)), Attribute("participant_pn", .jid(JID(user: "1203", server: JID.groupServer)))],
            [Attribute("sender_pn", .jid(JID(user: "15550001111", server: JID.userServer)))],
        ]
        for attributes in cases {
            let stanza = try wire(Node("message", attributes))
            XCTAssertThrowsError(try MessageAddressing.mappings(in: stanza), "\(attributes)") {
                XCTAssertEqual(($0 as? WAClientError)?.code, .stanzaMalformed)
            }
        }
        // Good attributes give the mappings.
        let good = try wire(Node("message", [
            Attribute("from", .jid(from)), Attribute("sender_pn", .jid(JID(user: "15550001111", server: JID.userServer))),
        ]))
        XCTAssertEqual(try MessageAddressing.mappings(in: good),
                       [try LIDMapping(JID(user: "100000000000001", server: JID.lidServer), JID(user: "15550001111", server: JID.userServer))])
        // A usync <lid val> that is not a LID is refused too.
        let answer = try wire(Node("iq", attributes: ["type": "result"], children: [Node("usync", children: [Node("list", children: [
            Node("user", attributes: ["jid": .jid(JID(user: "15550001111", server: JID.userServer))], children: [
                Node("devices", children: [Node("device-list", children: [Node("device", attributes: ["id": "0"])])]),
                Node("lid", attributes: ["val": .jid(JID(user: "15550009999", server: JID.userServer))]),
            ]),
        ])])]))
        XCTAssertThrowsError(try UsyncNodes.parseDeviceAnswer(answer)) { XCTAssertEqual(($0 as? WAClientError)?.code, .stanzaMalformed) }
    }
}
