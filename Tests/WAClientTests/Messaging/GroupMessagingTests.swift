import Foundation
import WABinary
import WAClient
import WAProto
import WASignal
import XCTest

/// Alice (devices 1 and 2), Bob and Carol in one group: sender keys
/// distributed 1:1 in `<participants>`, the text in one `<enc type=skmsg>`.
final class GroupMessagingTests: XCTestCase {
    let group = JID(user: "120363000000000001", server: JID.groupServer)

    func testGroupTextWithSenderKeysAndBack() async throws {
        let server = FakeServer()
        let alice1 = try await Party.make("15550001111", device: 1)
        let alice2 = try await Party.make("15550001111", device: 2)
        let bob = try await Party.make("15550002222", device: 0)
        let carol = try await Party.make("15550003333", device: 0)
        for party in [alice1, alice2, bob, carol] { try await server.register(party) }
        server.groupMembers = [alice1.user, bob.user, carol.user]
        var receivers = [JID: MessageReceiver]()
        for party in [alice1, alice2, bob, carol] { receivers[party.device] = party.receiver() }

        func devices(_ of: Party) async throws -> [JID] {
            let query = try wire(try UsyncNodes.deviceQueryIQ(id: "g", sid: "g", users: server.groupMembers))
            return try UsyncNodes.parseDeviceAnswer(try wire(try server.usyncAnswer(query))).flatMap(\.devices)
        }

        // Alice → group.
        let all = try await devices(alice1)
        XCTAssertEqual(all.count, 4)
        var message = WAE2E_Message()
        message.extendedTextMessage.text = "hi all @15550003333"
        message.extendedTextMessage.contextInfo.mentionedJid = [carol.user.description]
        let bundles = try await fetchBundles(alice1, for: all, server: server)
        let out = try await alice1.sender.groupMessage(
            id: "3EB0G1", group: group, message: message, participantDevices: all, bundles: bundles)
        let sent = try wire(out.node)
        XCTAssertEqual(sent.jid("to"), group)
        XCTAssertEqual(Set(out.encryptedFor), [alice2.device, bob.device, carol.device])
        XCTAssertEqual(sent.children("enc").map { $0.string("type") }, ["skmsg"])
        XCTAssertNotNil(sent.child("device-identity"))
        XCTAssertEqual(out.phash, ParticipantHash.v2(all))

        let delivered = try server.deliver(sent, from: alice1.device)
        XCTAssertEqual(Set(delivered.keys), [alice2.device, bob.device, carol.device])
        for device in [alice2.device, bob.device, carol.device] {
            let stanza = try XCTUnwrap(delivered[device])
            XCTAssertEqual(stanza.children("enc").map { $0.string("type") }, ["pkmsg", "skmsg"])
            let (received, receipt) = try expectMessage(try await receivers[device]!.receive(stanza))
            XCTAssertTrue(received.isGroup)
            XCTAssertEqual(received.chat, group)
            XCTAssertEqual(received.sender, alice1.device)
            XCTAssertEqual(received.isFromMe, device == alice2.device)
            guard case .text(let body, let context) = received.content else { return XCTFail("not text") }
            XCTAssertEqual(body, "hi all @15550003333")
            XCTAssertEqual(context?.mentions, [carol.user.description])
            let r = try wire(receipt)
            XCTAssertEqual(r.jid("to"), group)
            XCTAssertEqual(r.jid("participant"), alice1.device)
            XCTAssertEqual(r.string("type"), device == alice2.device ? "sender" : nil)
        }

        // A second group message reuses the sender key: nobody needs a distribution.
        let out2 = try await alice1.sender.groupMessage(
            id: "3EB0G2", group: group, message: text("second"), participantDevices: all,
            devicesWithSenderKey: Set(out.encryptedFor))
        XCTAssertNil(try wire(out2.node).child("participants"))
        XCTAssertNil(try wire(out2.node).child("device-identity"))
        let delivered2 = try server.deliver(try wire(out2.node), from: alice1.device)
        for device in [alice2.device, bob.device, carol.device] {
            XCTAssertEqual(delivered2[device]!.children("enc").map { $0.string("type") }, ["skmsg"])
            let received = try expectMessage(try await receivers[device]!.receive(delivered2[device]!)).0
            XCTAssertEqual(received.content, .text("second", context: nil))
        }

        // Bob answers in the group with his own sender key; Alice's devices and Carol read it.
        let bobBundles = try await fetchBundles(bob, for: all, server: server)
        let reply = try await bob.sender.groupMessage(
            id: "3EB0G3", group: group, message: text("hi alice"), participantDevices: all, bundles: bobBundles)
        XCTAssertEqual(Set(reply.encryptedFor), [alice1.device, alice2.device, carol.device])
        let delivered3 = try server.deliver(try wire(reply.node), from: bob.device)
        for device in [alice1.device, alice2.device, carol.device] {
            let received = try expectMessage(try await receivers[device]!.receive(delivered3[device]!)).0
            XCTAssertEqual(received.content, .text("hi alice", context: nil))
            XCTAssertEqual(received.sender, bob.device)
            XCTAssertFalse(received.isFromMe)
        }

        // Carol leaves: Alice rotates her sender key; the rest read on, Carol cannot.
        server.groupMembers = [alice1.user, bob.user]
        let remaining = all.filter { $0.user != carol.user.user }
        let rotated = try await alice1.sender.groupMessage(
            id: "3EB0G4", group: group, message: text("after carol"), participantDevices: remaining,
            devicesWithSenderKey: Set(out.encryptedFor), rotateSenderKey: true)
        XCTAssertEqual(Set(rotated.encryptedFor), [alice2.device, bob.device], "new key to everyone who stays")
        let delivered4 = try server.deliver(try wire(rotated.node), from: alice1.device)
        for device in [alice2.device, bob.device] {
            let received = try expectMessage(try await receivers[device]!.receive(delivered4[device]!)).0
            XCTAssertEqual(received.content, .text("after carol", context: nil))
        }
        var carolStanza = try XCTUnwrap(delivered4[bob.device])
        carolStanza.content = .nodes(carolStanza.children("enc").filter { $0.string("type") == "skmsg" })
        guard case .undecryptable = try await receivers[carol.device]!.receive(try wire(carolStanza)) else {
            return XCTFail("a member who left must not read the rotated key's messages")
        }

        // An skmsg from a sender whose key we never got is undecryptable and asks for a retry.
        var stranger = try await Party.make("15550004444", device: 0).receiver()
        guard case .undecryptable(let failure, let retry) = try await stranger.receive(delivered2[carol.device]!) else {
            return XCTFail("expected undecryptable")
        }
        XCTAssertEqual(failure.error.code, .messageDecryptFailed)
        XCTAssertTrue(failure.error.message.contains("signal.no_sender_key"), failure.error.message)
        let retryNode = try wire(try XCTUnwrap(retry))
        XCTAssertEqual(retryNode.jid("to"), group)
        XCTAssertEqual(retryNode.jid("participant"), alice1.device)
    }
}
