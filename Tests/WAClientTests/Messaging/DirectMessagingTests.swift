import Foundation
import WABinary
import WAClient
import WASim
import WAProto
import WASignal
import XCTest

/// Alice (our device 1, plus her linked device 2) and Bob (phone 0 and
/// companion 5) exchange real stanzas through the builders, the binary codec
/// and the parsers; no sockets.
final class DirectMessagingTests: XCTestCase {
    var server: FakeServer!
    var alice1: Party!
    var alice2: Party!
    var bob0: Party!
    var bob5: Party!

    override func setUp() async throws {
        server = FakeServer()
        alice1 = try await .make("15550001111", device: 1)
        alice2 = try await .make("15550001111", device: 2)
        bob0 = try await .make("15550002222", device: 0)
        bob5 = try await .make("15550002222", device: 5)
        for party in [alice1!, alice2!, bob0!, bob5!] { try await server.register(party) }
    }

    /// Edits, revokes and reactions carry `<enc decrypt-fail=hide>` on every device's `<enc>` (as
    /// whatsmeow's send.go); a plain text does not. The attribute reaches the recipient.
    func testEditsAndReactionsHideDecryptFailures() async throws {
        let cases: [(String, WAE2E_Message, Bool)] = [
            ("text", text("plain"), false),
            ("reaction", OutgoingContent.reaction(chat: bob0.user, messageID: "3EB0REACT", sender: bob0.user, fromMe: false, emoji: "👍"), true),
            ("edit", OutgoingContent.edit(chat: bob0.user, messageID: "3EB0EDIT", newText: "fixed"), true),
            ("revoke", OutgoingContent.revoke(chat: bob0.user, messageID: "3EB0GONE"), true),
        ]
        for (index, (name, message, hides)) in cases.enumerated() {
            let (out, delivered) = try await sendDirect(alice1, to: bob0.user, message, id: "3EB0DF0\(index)", server: server)
            let encs = try XCTUnwrap(try wire(out.node).child("participants")).children("to").compactMap { $0.child("enc") }
            XCTAssertFalse(encs.isEmpty, name)
            XCTAssertTrue(encs.allSatisfy { $0.string("decrypt-fail") == (hides ? "hide" : nil) }, "\(name): \(encs)")
            XCTAssertEqual(delivered[bob5.device]?.child("enc")?.string("decrypt-fail"), hides ? "hide" : nil, name)
        }
    }

    func testTextToBothBobDevicesAndOwnCopyThenWhisper() async throws {
        let (out, delivered) = try await sendDirect(alice1, to: bob0.user, text("hello bob"), id: "3EB0AAAA", server: server)

        // The stanza as sent.
        let sent = try wire(out.node)
        XCTAssertEqual(sent.jid("to"), bob0.user)
        XCTAssertEqual(sent.string("type"), "text")
        let targets = try XCTUnwrap(sent.child("participants")).children("to").compactMap { $0.jid("jid") }
        XCTAssertEqual(Set(targets), [bob0.device, bob5.device, alice2.device])
        XCTAssertTrue(sent.child("participants")!.children("to").allSatisfy {
            $0.child("enc")?.string("type") == "pkmsg" && $0.child("enc")?.string("v") == "2"
        })
        XCTAssertEqual(sent.child("device-identity")?.bytes.map { Data($0) }, alice1.deviceIdentity)
        XCTAssertTrue(out.hasPreKeyMessage)
        XCTAssertEqual(out.phash, ParticipantHash.v2([alice1.device, alice2.device, bob0.device, bob5.device]))
        XCTAssertEqual(sent.string("phash"), out.phash)
        XCTAssertTrue(out.skipped.isEmpty)
        XCTAssertEqual(delivered[alice2.device]?.jid("recipient"), bob0.user, "own-device copy names the chat")

        // The server's ack: sent, with a matching phash.
        let ack = try XCTUnwrap(try ServerAck(parsing: try wire(ServerMessageRouting.ack(for: sent, timestamp: 1_700_000_000, phash: out.phash))))
        XCTAssertEqual(ack.messageID, "3EB0AAAA")
        XCTAssertEqual(ack.status, .sent)
        XCTAssertEqual(ack.phash, out.phash)

        // Bob's two devices read it.
        for bob in [bob0!, bob5!] {
            var receiver = bob.receiver()
            let (message, receipt) = try expectMessage(try await receiver.receive(try XCTUnwrap(delivered[bob.device])))
            XCTAssertEqual(message.content, .text("hello bob", context: nil))
            XCTAssertEqual(message.id, "3EB0AAAA")
            XCTAssertEqual(message.chat, alice1.user)
            XCTAssertEqual(message.sender, alice1.device)
            XCTAssertFalse(message.isFromMe)
            XCTAssertEqual(message.pushName, "Sender")
            XCTAssertEqual(message.timestamp, Date(timeIntervalSince1970: TimeInterval(server.clock)))
            let wireReceipt = try wire(receipt)
            XCTAssertEqual(wireReceipt.tag, "receipt")
            XCTAssertEqual(wireReceipt.string("id"), "3EB0AAAA")
            XCTAssertEqual(wireReceipt.jid("to"), alice1.user)
            XCTAssertNil(wireReceipt.string("type"))

            // The delivery receipt, forwarded, is a `delivered` status for Alice.
            let forwarded = try server.forward(receipt: receipt, from: bob.device)
            guard case .status(let update) = try ReceiptEvent(parsing: forwarded) else { return XCTFail("not a status") }
            XCTAssertEqual(update.status, .delivered)
            XCTAssertEqual(update.messageIDs, ["3EB0AAAA"])
            XCTAssertEqual(update.by, bob.device)
            XCTAssertEqual(update.chat, bob.user)
        }

        // Alice's second device gets the DeviceSentMessage copy.
        var receiver2 = alice2.receiver()
        let (copy, copyReceipt) = try expectMessage(try await receiver2.receive(try XCTUnwrap(delivered[alice2.device])))
        XCTAssertTrue(copy.isFromMe)
        XCTAssertEqual(copy.chat, bob0.user)
        XCTAssertEqual(copy.content, .text("hello bob", context: nil))
        XCTAssertEqual(try wire(copyReceipt).string("type"), "sender")
        XCTAssertEqual(try wire(copyReceipt).jid("recipient"), bob0.user)

        // Until a device answers, libsignal keeps sending pkmsg to it (same session, next counter).
        let (out2, delivered2) = try await sendDirect(alice1, to: bob0.user, text("again"), id: "3EB0BBBB", server: server)
        XCTAssertTrue(out2.hasPreKeyMessage)
        let needing = try await alice1.sender.devicesNeedingBundles([bob0.device, bob5.device, alice2.device])
        XCTAssertTrue(needing.isEmpty)
        var receiver0 = bob0.receiver()
        let again = try expectMessage(try await receiver0.receive(delivered2[bob0.device]!)).0
        XCTAssertEqual(again.content, .text("again", context: nil))

        // Bob's phone answers; from then on Alice sends it `msg`, and no bundle is fetched for it.
        let (_, replies) = try await sendDirect(bob0, to: alice1.user, text("hi alice"), id: "3EB0CCCC", server: server)
        var receiver1 = alice1.receiver()
        _ = try expectMessage(try await receiver1.receive(replies[alice1.device]!))
        let (out3, delivered3) = try await sendDirect(alice1, to: bob0.user, text("third"), id: "3EB0DDDD", server: server)
        let encTypes = Dictionary(uniqueKeysWithValues: try wire(out3.node).child("participants")!.children("to").map {
            ($0.jid("jid")!, $0.child("enc")!.string("type")!)
        })
        XCTAssertEqual(encTypes[bob0.device], "msg")
        XCTAssertEqual(encTypes[bob5.device], "pkmsg")
        let third = try expectMessage(try await receiver0.receive(delivered3[bob0.device]!)).0
        XCTAssertEqual(third.content, .text("third", context: nil))
    }

    func testReplyWithContextAndMentions() async throws {
        let (_, first) = try await sendDirect(alice1, to: bob0.user, text("question?"), id: "3EB0Q1", server: server)
        var bobReceiver = bob0.receiver()
        _ = try expectMessage(try await bobReceiver.receive(first[bob0.device]!))

        var reply = WAE2E_Message()
        reply.extendedTextMessage.text = "answer @15550001111"
        reply.extendedTextMessage.contextInfo.stanzaID = "3EB0Q1"
        reply.extendedTextMessage.contextInfo.participant = alice1.user.description
        reply.extendedTextMessage.contextInfo.quotedMessage = text("question?")
        reply.extendedTextMessage.contextInfo.mentionedJid = [alice1.user.description]
        let (out, delivered) = try await sendDirect(bob0, to: alice1.user, reply, id: "3EB0R1", server: server)
        // Bob already has a session with alice1 (from her pkmsg) but not with alice2 or bob5.
        XCTAssertEqual(Set(out.encryptedFor), [alice1.device, alice2.device, bob5.device])

        var aliceReceiver = alice1.receiver()
        let (message, _) = try expectMessage(try await aliceReceiver.receive(delivered[alice1.device]!))
        guard case .text(let body, let context) = message.content else { return XCTFail("not text") }
        XCTAssertEqual(body, "answer @15550001111")
        XCTAssertEqual(context?.quotedID, "3EB0Q1")
        XCTAssertEqual(context?.quotedParticipant, alice1.user.description)
        XCTAssertEqual(context?.mentions, [alice1.user.description])
        XCTAssertEqual(message.message.extendedTextMessage.contextInfo.quotedMessage.conversation, "question?")
    }

    func testReactionRevokeAndEdit() async throws {
        var bobReceiver = bob0.receiver()
        let (_, first) = try await sendDirect(alice1, to: bob0.user, text("typo hre"), id: "3EB0T1", server: server)
        _ = try expectMessage(try await bobReceiver.receive(first[bob0.device]!))

        var key = WACommon_MessageKey()
        key.remoteJid = bob0.user.description
        key.fromMe = true
        key.id = "3EB0T1"

        var edit = WAE2E_Message()
        edit.protocolMessage.type = .messageEdit
        edit.protocolMessage.key = key
        edit.protocolMessage.editedMessage = text("typo here")
        let (editOut, editDelivered) = try await sendDirect(alice1, to: bob0.user, edit, id: "3EB0E1", server: server)
        XCTAssertEqual(try wire(editOut.node).string("edit"), "1")
        let edited = try expectMessage(try await bobReceiver.receive(editDelivered[bob0.device]!)).0
        guard case .edit(let target, let newContent) = edited.content else { return XCTFail("not an edit") }
        XCTAssertEqual(target.id, "3EB0T1")
        XCTAssertEqual(newContent.conversation, "typo here")

        var reaction = WAE2E_Message()
        reaction.reactionMessage.key = key
        reaction.reactionMessage.text = "👍"
        reaction.reactionMessage.senderTimestampMs = 1_700_000_000_000
        let (reactOut, reactDelivered) = try await sendDirect(alice1, to: bob0.user, reaction, id: "3EB0X1", server: server)
        XCTAssertEqual(try wire(reactOut.node).string("type"), "reaction")
        let reacted = try expectMessage(try await bobReceiver.receive(reactDelivered[bob0.device]!)).0
        XCTAssertEqual(reacted.content, .reaction(to: .init(id: "3EB0T1", remoteJID: bob0.user.description, fromMe: true, participant: nil), emoji: "👍"))

        var revoke = WAE2E_Message()
        revoke.protocolMessage.type = .revoke
        revoke.protocolMessage.key = key
        let (revokeOut, revokeDelivered) = try await sendDirect(alice1, to: bob0.user, revoke, id: "3EB0V1", server: server)
        XCTAssertEqual(try wire(revokeOut.node).string("edit"), "7")
        let revoked = try expectMessage(try await bobReceiver.receive(revokeDelivered[bob0.device]!)).0
        guard case .revoke(let revokedKey) = revoked.content else { return XCTFail("not a revoke") }
        XCTAssertEqual(revokedKey.id, "3EB0T1")
        XCTAssertTrue(revokedKey.fromMe)
    }

    func testMediaLocationContactAndPollContent() async throws {
        var image = WAE2E_Message()
        image.imageMessage.mimetype = "image/jpeg"
        image.imageMessage.caption = "cat"
        image.imageMessage.fileLength = 1234
        image.imageMessage.directPath = "/v/t62/abc"
        image.imageMessage.mediaKey = Data(repeating: 7, count: 32)
        image.imageMessage.fileSha256 = Data(repeating: 8, count: 32)
        image.imageMessage.fileEncSha256 = Data(repeating: 9, count: 32)
        var location = WAE2E_Message()
        location.locationMessage.degreesLatitude = 52.5
        location.locationMessage.degreesLongitude = 13.4
        location.locationMessage.name = "Berlin"
        var contact = WAE2E_Message()
        contact.contactMessage.displayName = "Carol"
        contact.contactMessage.vcard = "BEGIN:VCARD\nEND:VCARD"
        var poll = WAE2E_Message()
        poll.pollCreationMessageV3.name = "Lunch?"
        poll.pollCreationMessageV3.options = ["yes", "no"].map { var o = WAE2E_PollCreationMessage.Option(); o.optionName = $0; return o }
        poll.pollCreationMessageV3.selectableOptionsCount = 1

        var bobReceiver = bob0.receiver()
        var results: [MessageContent] = []
        for (i, message) in [image, location, contact, poll].enumerated() {
            let (out, delivered) = try await sendDirect(alice1, to: bob0.user, message, id: "3EB0M\(i)", server: server)
            XCTAssertEqual(try wire(out.node).string("type"), i == 3 ? "poll" : "media")
            let mediaTypes = try wire(out.node).child("participants")!.children("to").map { $0.child("enc")?.string("mediatype") }
            XCTAssertEqual(Set(mediaTypes), [["image", "location", "vcard", nil][i]])
            results.append(try expectMessage(try await bobReceiver.receive(delivered[bob0.device]!)).0.content)
        }
        guard case .media(let media) = results[0] else { return XCTFail("not media") }
        XCTAssertEqual(media.kind, .image)
        XCTAssertEqual(media.caption, "cat")
        XCTAssertEqual(media.fileLength, 1234)
        XCTAssertEqual(media.mediaKey, Data(repeating: 7, count: 32))
        XCTAssertEqual(results[1], .location(latitude: 52.5, longitude: 13.4, name: "Berlin", address: nil))
        XCTAssertEqual(results[2], .contact(displayName: "Carol", vcard: "BEGIN:VCARD\nEND:VCARD"))
        XCTAssertEqual(results[3], .poll(name: "Lunch?", options: ["yes", "no"], selectableCount: 1))
    }

    func testReinstalledPeerIdentityChangeIsAcceptedAndReported() async throws {
        var aliceReceiver = alice1.receiver()
        let (_, first) = try await sendDirect(alice1, to: bob0.user, text("before"), id: "3EB0I0", server: server)
        var oldBob = bob0.receiver()
        _ = try expectMessage(try await oldBob.receive(first[bob0.device]!))
        let (_, first2) = try await sendDirect(alice2, to: bob0.user, text("before 2"), id: "3EB0I9", server: server)
        _ = try expectMessage(try await oldBob.receive(first2[bob0.device]!))
        let oldIdentity = await bob0.store.identityKeyPair().publicKey

        // Bob's phone reinstalls: same device JID, new identity and prekeys.
        let newBob = try await Party.make("15550002222", device: 0, account: .generate())
        server.devices[newBob.user] = []
        try await server.register(newBob)
        try await server.register(bob5)

        // Receiving: his first pkmsg under the new identity is accepted and reported.
        let (_, fromNewBob) = try await sendDirect(newBob, to: alice1.user, text("new phone"), id: "3EB0I1", server: server)
        let (message, _) = try expectMessage(try await aliceReceiver.receive(fromNewBob[alice1.device]!))
        XCTAssertEqual(message.content, .text("new phone", context: nil))
        let change = try XCTUnwrap(message.identityChange)
        XCTAssertEqual(change.previousKey, oldIdentity)
        let newIdentity = await newBob.store.identityKeyPair().publicKey
        XCTAssertEqual(change.newKey, newIdentity)
        XCTAssertFalse(message.description.contains("new phone"), "description leaves the body out")

        // Sending: with the stale session dropped, the new bundle's identity change is accepted and reported.
        await alice2.store.deleteSession(for: SignalAddress(jid: bob0.device))
        let (out, delivered) = try await sendDirect(alice2, to: bob0.user, text("welcome back"), id: "3EB0I2", server: server)
        XCTAssertEqual(out.identityChanges.map(\.address), [SignalAddress(jid: bob0.device)])
        var newBobReceiver = newBob.receiver()
        let welcome = try expectMessage(try await newBobReceiver.receive(delivered[bob0.device]!)).0
        XCTAssertEqual(welcome.content, .text("welcome back", context: nil))
    }

    func testOwnLIDAddressedCopyIsFromMe() async throws {
        let aliceL1 = try await Party.make("9111", device: 1, server: JID.lidServer)
        let aliceL2 = try await Party.make("9111", device: 2, server: JID.lidServer)
        for party in [aliceL1, aliceL2] { try await server.register(party) }
        let (_, delivered) = try await sendDirect(aliceL1, to: bob0.user, text("via lid"), id: "3EB0L1", server: server)
        XCTAssertEqual(Set(delivered.keys), [aliceL2.device, bob0.device, bob5.device])
        var receiver = MessageReceiver(store: aliceL2.store, ownDevice: alice2.device, ownLID: aliceL2.user)
        let (copy, _) = try expectMessage(try await receiver.receive(delivered[aliceL2.device]!))
        XCTAssertTrue(copy.isFromMe)
        XCTAssertEqual(copy.chat, bob0.user)
        XCTAssertEqual(copy.content, .text("via lid", context: nil))
        var withoutLID = MessageReceiver(store: aliceL2.store, ownDevice: alice2.device)
        let second = try await sendDirect(aliceL1, to: bob0.user, text("again"), id: "3EB0L2", server: server).1
        let notOwn = try expectMessage(try await withoutLID.receive(second[aliceL2.device]!)).0
        XCTAssertFalse(notOwn.isFromMe, "without our LID the copy is not recognised, and its DSM is not unwrapped")
        XCTAssertEqual(notOwn.content, .other)
    }

    func testSendWithoutBundleSkipsThatDeviceAndSaysWhy() async throws {
        let prep = try await prepareDirect(alice1, to: bob0.user, server: server)
        var bundles = prep.bundles
        bundles[bob5.device] = nil
        let out = try await alice1.sender.directMessage(
            id: "3EB0S1", to: bob0.user, message: text("x"), recipientDevices: prep.recipient, ownDevices: prep.own, bundles: bundles)
        XCTAssertEqual(Set(out.encryptedFor), [bob0.device, alice2.device])
        XCTAssertEqual(out.skipped[bob5.device]?.code, .messageEncryptFailed)
        await XCTAssertThrowsErrorAsync(try await alice1.sender.directMessage(
            id: "3EB0S2", to: JID(user: "123", server: JID.groupServer), message: text("x"), recipientDevices: [], ownDevices: []))
    }
}

func XCTAssertThrowsErrorAsync<T>(
    _ expression: @autoclosure () async throws -> T, file: StaticString = #filePath, line: UInt = #line
) async {
    do {
        _ = try await expression()
        XCTFail("expected an error", file: file, line: line)
    } catch {}
}
