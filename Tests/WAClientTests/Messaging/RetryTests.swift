import Foundation
import WABinary
import WAClient
import WAProto
import WASignal
import XCTest

/// A corrupted `<enc>` yields a retry receipt and leaves sessions alone; the
/// sender answers the retry with a resend the recipient can read.
final class RetryTests: XCTestCase {
    func testCorruptedEncYieldsRetryReceiptAndLeavesSessionsUntouched() async throws {
        let server = FakeServer()
        let alice = try await Party.make("15550001111", device: 1)
        let bob = try await Party.make("15550002222", device: 0)
        for party in [alice, bob] { try await server.register(party) }
        var bobReceiver = bob.receiver()

        // Open the session both ways so the next messages are plain `msg`.
        let (_, first) = try await sendDirect(alice, to: bob.user, text("one"), id: "3EB0R0", server: server)
        _ = try expectMessage(try await bobReceiver.receive(first[bob.device]!))
        let (_, back) = try await sendDirect(bob, to: alice.user, text("ack"), id: "3EB0R1", server: server)
        var aliceReceiver = alice.receiver()
        _ = try expectMessage(try await aliceReceiver.receive(back[alice.device]!))

        var recent = RecentMessageCache(capacity: 8)
        let original = text("two")
        let (_, second) = try await sendDirect(alice, to: bob.user, original, id: "3EB0R2", server: server)
        recent.insert(original, chat: bob.user, id: "3EB0R2")
        let good = try XCTUnwrap(second[bob.device])
        XCTAssertEqual(good.child("enc")?.string("type"), "msg")

        // Flip one ciphertext byte: the MAC fails.
        var corrupted = good
        var enc = try XCTUnwrap(corrupted.child("enc"))
        var bytes = try XCTUnwrap(enc.bytes)
        bytes[bytes.count / 2] ^= 0x40
        enc.content = .bytes(bytes)
        corrupted.content = .nodes([enc])
        corrupted = try wire(corrupted)

        let before = await bob.sessionBytes(with: alice.device)
        guard case .undecryptable(let failure, let retry) = try await bobReceiver.receive(corrupted) else {
            return XCTFail("expected undecryptable")
        }
        let after = await bob.sessionBytes(with: alice.device)
        XCTAssertEqual(before, after, "a failed decrypt must not change the session")
        XCTAssertEqual(failure.id, "3EB0R2")
        XCTAssertEqual(failure.retryCount, 1)
        XCTAssertEqual(failure.error.code, .messageDecryptFailed)

        // The retry receipt's shape.
        let receipt = try wire(try XCTUnwrap(retry))
        XCTAssertEqual(receipt.string("type"), "retry")
        XCTAssertEqual(receipt.string("id"), "3EB0R2")
        XCTAssertEqual(receipt.jid("to"), alice.device)
        let retryChild = try XCTUnwrap(receipt.child("retry"))
        XCTAssertEqual(retryChild.string("count"), "1")
        XCTAssertEqual(retryChild.string("id"), "3EB0R2")
        XCTAssertEqual(retryChild.string("v"), "1")
        XCTAssertEqual(retryChild.string("t"), good.string("t"))
        let registration = await bob.store.localRegistrationID()
        XCTAssertEqual(receipt.child("registration")?.bytes, [
            UInt8(registration >> 24), UInt8(registration >> 16 & 0xFF), UInt8(registration >> 8 & 0xFF), UInt8(registration & 0xFF),
        ])
        XCTAssertNil(receipt.child("keys"))

        // The untouched original still decrypts: the session was not advanced.
        let stillGood = try expectMessage(try await bobReceiver.receive(good)).0
        XCTAssertEqual(stillGood.content, .text("two", context: nil))

        // Alice gets the retry receipt, finds the message and resends it.
        let forwarded = try server.forward(receipt: receipt, from: bob.device)
        guard case .retry(let parsed) = try ReceiptEvent(parsing: forwarded) else { return XCTFail("not a retry") }
        XCTAssertEqual(parsed.device, bob.device)
        XCTAssertEqual(parsed.count, 1)
        XCTAssertEqual(parsed.registrationID, registration)
        XCTAssertFalse(parsed.wantsFreshBundle)
        let toResend = try XCTUnwrap(recent.message(chat: bob.user, id: parsed.messageID))
        let resend = try wire(try await alice.sender.resend(toResend, chat: bob.user, for: parsed))
        XCTAssertEqual(resend.jid("to"), bob.device)
        XCTAssertEqual(resend.string("id"), "3EB0R2")
        XCTAssertEqual(resend.child("enc")?.string("count"), "1")
        XCTAssertEqual(resend.string("device_fanout"), "false")
        var delivered = resend
        delivered["to"] = nil
        delivered["from"] = .jid(alice.device)
        let resent = try expectMessage(try await bobReceiver.receive(try wire(delivered))).0
        XCTAssertEqual(resent.content, .text("two", context: nil))
    }

    func testSecondRetryCarriesKeysAndSenderRebuildsSession() async throws {
        let alice = try await Party.make("15550001111", device: 1)
        let bob = try await Party.make("15550002222", device: 0)
        let bobIdentity = await bob.store.identityKeyPair().publicKey
        let freshPreKey = KeyHelper.generatePreKeys(start: 500, count: 1)[0]
        await bob.store.storePreKey(freshPreKey)
        let keys = RetryReceipt.Keys(identity: bobIdentity, preKey: freshPreKey, signedPreKey: bob.signedPreKey,
                                     deviceIdentity: bob.deviceIdentity)
        var receiver = MessageReceiver(store: bob.store, ownDevice: bob.device, retryKeys: { keys })

        // Garbage from Alice, which Bob cannot decrypt at all (no session).
        let junk = try wire(Node("message", attributes: [
            "from": .jid(alice.device), "id": "3EB0J1", "t": "1700000000", "type": "text",
        ], children: [Node("enc", attributes: ["v": "2", "type": "msg"], content: .bytes([0x33, 1, 2, 3]))]))
        var counts: [Int?] = []
        var lastReceipt: Node?
        for _ in 0..<6 {
            guard case .undecryptable(let failure, let receipt) = try await receiver.receive(junk) else { return XCTFail() }
            counts.append(failure.retryCount)
            if let receipt { lastReceipt = receipt }
            if failure.retryCount == 2 {
                XCTAssertNotNil(try wire(try XCTUnwrap(receipt)).child("keys"), "second retry carries keys")
            }
        }
        XCTAssertEqual(counts, [1, 2, 3, 4, nil, nil], "at most four retry receipts (whatsmeow stops at 5)")

        // Alice parses a retry with keys and opens a fresh session from them.
        let forwarded = try FakeServer().forward(receipt: try XCTUnwrap(lastReceipt), from: bob.device)
        guard case .retry(let retry) = try ReceiptEvent(parsing: forwarded) else { return XCTFail("not a retry") }
        let bundle = try XCTUnwrap(retry.bundle)
        XCTAssertFalse(retry.wantsFreshBundle, "keys came with it")
        XCTAssertEqual(bundle.preKeyID, 500)
        XCTAssertEqual(bundle.identityKey, bobIdentity)
        let bobRegistration = await bob.store.localRegistrationID()
        XCTAssertEqual(bundle.registrationID, bobRegistration)
        let resend = try wire(try await alice.sender.resend(text("retry me"), chat: bob.user, for: retry))
        XCTAssertEqual(resend.child("enc")?.string("type"), "pkmsg")
        XCTAssertEqual(resend.child("enc")?.string("count"), "4")
        XCTAssertNotNil(resend.child("device-identity"))
        var delivered = resend
        delivered["to"] = nil
        delivered["from"] = .jid(alice.device)
        delivered["id"] = "3EB0J2"
        let received = try expectMessage(try await receiver.receive(try wire(delivered))).0
        XCTAssertEqual(received.content, .text("retry me", context: nil))
    }

    func testSecondRetryWithoutKeysLeadsToAFetchedBundle() async throws {
        let server = FakeServer()
        let alice = try await Party.make("15550001111", device: 1)
        let bob = try await Party.make("15550002222", device: 0)
        for party in [alice, bob] { try await server.register(party) }
        var bobReceiver = bob.receiver()
        let (_, first) = try await sendDirect(alice, to: bob.user, text("one"), id: "3EB0F0", server: server)
        _ = try expectMessage(try await bobReceiver.receive(first[bob.device]!))

        // Bob loses his session with Alice; her next message cannot be read.
        await bob.store.deleteSession(for: SignalAddress(jid: alice.device))
        let original = text("lost?")
        let (_, sent) = try await sendDirect(alice, to: bob.user, original, id: "3EB0F1", server: server)
        var stanza = try XCTUnwrap(sent[bob.device])
        for expectedCount in 1...2 {
            guard case .undecryptable(_, let receipt?) = try await bobReceiver.receive(stanza) else { return XCTFail("no retry") }
            guard case .retry(let retry) = try ReceiptEvent(parsing: try server.forward(receipt: receipt, from: bob.device)) else {
                return XCTFail("not a retry")
            }
            XCTAssertEqual(retry.count, expectedCount)
            XCTAssertEqual(retry.wantsFreshBundle, expectedCount == 2)
            let bundle = retry.wantsFreshBundle ? try await fetchFresh(bob.device, server: server) : nil
            let baseKeyBefore = await alice.store.loadSession(for: SignalAddress(jid: bob.device))?.currentBaseKey
            var resend = try wire(try await alice.sender.resend(original, chat: bob.user, for: retry, bundle: bundle))
            let baseKeyAfter = await alice.store.loadSession(for: SignalAddress(jid: bob.device))?.currentBaseKey
            // The first resend reuses the stale session (Bob still cannot read it); the second opens a new one.
            XCTAssertEqual(baseKeyBefore != baseKeyAfter, expectedCount == 2)
            XCTAssertEqual(resend.child("enc")?.string("type"), "pkmsg")
            XCTAssertEqual(resend.child("enc")?.string("count"), String(expectedCount))
            resend["to"] = nil
            resend["from"] = .jid(alice.device)
            stanza = try wire(resend)
        }
        let recovered = try expectMessage(try await bobReceiver.receive(stanza)).0
        XCTAssertEqual(recovered.content, .text("lost?", context: nil))
    }

    func fetchFresh(_ device: JID, server: FakeServer) async throws -> PreKeyBundle {
        let query = try wire(try PreKeyNodes.bundleQueryIQ(id: "r", devices: [device], reason: "identity"))
        XCTAssertEqual(query.child("key")?.child("user")?.string("reason"), "identity")
        return try XCTUnwrap(try PreKeyNodes.parseBundles(try wire(try server.bundleAnswer(query)))[device]).get()
    }

    func testRetryCounterIsBounded() {
        var counter = RetryCounter(capacity: 3)
        XCTAssertEqual(counter.next(for: "a"), 1)
        XCTAssertEqual(counter.next(for: "b", countInMessage: 2), 3)
        _ = counter.next(for: "c")
        _ = counter.next(for: "d")
        XCTAssertEqual(counter.count(for: "a"), 0, "oldest id forgotten beyond capacity")
        XCTAssertEqual(counter.count(for: "d"), 1)
    }
}
