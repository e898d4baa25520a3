import Foundation
import WABinary
import WAClient
import WASim
import WASignal
import XCTest

/// Records a client's events for assertions.
actor EventLog {
    private(set) var events: [WAEvent] = []
    func add(_ event: WAEvent) { events.append(event) }

    var received: [ReceivedMessage] {
        events.compactMap { event -> ReceivedMessage? in
            guard case .messageReceived(let message) = event else { return nil }
            return message
        }
    }

    func statuses(of id: String, by user: String) -> [MessageStatus] {
        events.compactMap {
            guard case .messageStatus(let update) = $0, update.messageIDs.contains(id), update.by.user == user, !update.isSelf
            else { return nil }
            return update.status
        }
    }

    var offlineCounts: [Int] {
        events.compactMap { event -> Int? in
            guard case .offlineSyncCompleted(let count) = event else { return nil }
            return count
        }
    }

    static func watching(_ client: WAClient) -> EventLog {
        let log = EventLog()
        Task { for await event in client.events { await log.add(event) } }
        return log
    }
}

/// What a message handler was given, failing the first `failFirst` attempts.
actor HandledLog {
    private(set) var attempts = 0
    private(set) var taken: [String] = []
    struct Refused: Error {}

    func take(_ id: String, failFirst: Int) throws {
        attempts += 1
        if attempts <= failFirst { throw Refused() }
        taken.append(id)
    }
}

func user(_ number: String) -> JID { JID(user: number, server: JID.userServer) }

extension SimHarness {
    func messagingClient(store: InMemoryDeviceStore) async -> WAClient {
        WAClient(store: store, configuration: await configuration(), features: [MessagingFeature(store: store)])
    }
}

/// Messaging end to end: WAClient with `MessagingFeature` against WASim's routing and simulated phones.
final class MessagingEndToEndTests: XCTestCase {
    nonisolated func texts(_ messages: [ReceivedMessage]) -> [String] {
        messages.compactMap { message -> String? in
            guard case .text(let text, _) = message.content else { return nil }
            return text
        }
    }

    func testTextBothWaysWithStatusesAndPreKeyUpload() async throws {
        let harness = try await SimHarness.start()
        let sim = harness.sim
        let store = InMemoryDeviceStore()
        let client = await harness.messagingClient(store: store)
        let log = EventLog.watching(client)
        let me = "15550100001", peer = "15550100002"
        let info = try await within(20) { try await harness.qrLogin(client, phone: me) }
        await sim.createPhone(number: peer)
        try await eventually(10, "812 prekeys uploaded") { await sim.uploadedPreKeyCount(info.jid) == 812 }

        // Client → phone: sent (server ack), delivered, read.
        let sent = try await within(10) { try await client.sendText(to: user(peer), text: "hello phone") }
        XCTAssertEqual(sent.chat, user(peer))
        XCTAssertEqual(sent.deviceCount, 2, "the peer's phone and our own phone (DeviceSentMessage)")
        XCTAssertNotNil(sent.phash)
        try await eventually(5, "peer phone decrypted") {
            await sim.receivedMessages(phone: peer).contains { $0.id == sent.id && $0.text == "hello phone" && !$0.isFromMe }
        }
        let atPeer = await sim.receivedMessages(phone: peer).first { $0.id == sent.id }
        XCTAssertEqual(atPeer?.sender, info.jid)
        XCTAssertEqual(atPeer?.chat, user(me))
        // Our own phone got the DeviceSentMessage copy, addressed to the peer's chat.
        try await eventually(5, "own phone got the copy") {
            await sim.receivedMessages(phone: me).contains { $0.id == sent.id && $0.isFromMe && $0.chat == user(peer) }
        }
        try await eventually(5, "delivered") { await log.statuses(of: sent.id, by: peer).contains(.delivered) }
        try await sim.markRead(phone: peer, ids: [sent.id], chat: user(me))
        try await eventually(5, "read") { await log.statuses(of: sent.id, by: peer).contains(.read) }

        // Phone → client: decrypted, delivery receipt back to the phone, then read.
        let incoming = try await sim.sendText(from: peer, to: user(me), text: "hello client")
        try await eventually(5, "client received") { await log.received.contains { $0.id == incoming } }
        let message = await log.received.first { $0.id == incoming }
        XCTAssertEqual(message?.sender.user, peer)
        XCTAssertEqual(message?.chat, user(peer))
        XCTAssertEqual(message?.isFromMe, false)
        XCTAssertEqual(message?.content, .text("hello client", context: nil))
        try await eventually(5, "phone sees delivered") { await sim.messageStatus(phone: peer, id: incoming) == .delivered }
        try await client.markRead(ids: [incoming], chat: user(peer))
        try await eventually(5, "phone sees read") { await sim.messageStatus(phone: peer, id: incoming) == .read }

        // A second message each way rides the open sessions (no new bundle needed).
        let before = await sim.uploadedPreKeyCount(info.jid)
        let again = try await client.sendText(to: user(peer), text: "second")
        let reply = try await sim.sendText(from: peer, to: user(me), text: "second reply")
        try await eventually(5, "both seconds") {
            let phoneGot = await sim.receivedMessages(phone: peer).contains { $0.id == again.id && $0.text == "second" }
            let clientGot = await log.received.contains { $0.id == reply }
            return phoneGot && clientGot
        }
        let after = await sim.uploadedPreKeyCount(info.jid)
        XCTAssertEqual(before, after, "an existing session takes no new prekey")
        await harness.shutdown(client)
    }

    func testOfflineMessagesArriveInOrderOnReconnect() async throws {
        let harness = try await SimHarness.start()
        let sim = harness.sim
        let store = InMemoryDeviceStore()
        let me = "15550100011", peer = "15550100012"
        let first = await harness.messagingClient(store: store)
        let info = try await within(20) { try await harness.qrLogin(first, phone: me) }
        await sim.createPhone(number: peer)
        try await eventually(10, "prekeys uploaded") { await sim.uploadedPreKeyCount(info.jid) == 812 }
        await first.stop()
        try await eventually(5, "device offline") { await !sim.isOnline(info.jid) }

        var ids: [String] = []
        for index in 1...5 { ids.append(try await sim.sendText(from: peer, to: user(me), text: "offline \(index)")) }
        let queued = await sim.outboxCount(info.jid)
        XCTAssertEqual(queued, 5)

        let second = await harness.messagingClient(store: store)
        let log = EventLog.watching(second)
        try await second.start()
        try await eventually(10, "offline batch") { await log.received.count == 5 }
        let received = await log.received
        XCTAssertEqual(received.map(\.id), ids, "in the order sent")
        XCTAssertEqual(texts(received), (1...5).map { "offline \($0)" })
        let offline = await log.offlineCounts
        XCTAssertEqual(offline, [5])
        try await eventually(5, "outbox emptied by acks") { await sim.outboxCount(info.jid) == 0 }
        await harness.shutdown(second)
    }

    func testAFailingMessageHandlerWithholdsTheReceiptUntilTheRedeliveryIsHandled() async throws {
        let harness = try await SimHarness.start()
        let sim = harness.sim
        let store = InMemoryDeviceStore()
        let me = "15550100031", peer = "15550100032"
        let handled = HandledLog()
        // The first hand-over fails (say, the outbox disk is full); later ones succeed.
        let feature = MessagingFeature(store: store, onMessage: { message in
            try await handled.take(message.id, failFirst: 1)
        })
        let client = WAClient(store: store, configuration: await harness.configuration(), features: [feature])
        let log = EventLog.watching(client)
        let info = try await within(20) { try await harness.qrLogin(client, phone: me) }
        await sim.createPhone(number: peer)
        try await eventually(10, "prekeys uploaded") { await sim.uploadedPreKeyCount(info.jid) == 812 }

        let p1 = try await sim.sendText(from: peer, to: user(me), text: "p1")
        try await eventually(5, "handler tried once") { await handled.attempts == 1 }
        try await Task.sleep(for: .milliseconds(300))
        let published = await log.received.count
        XCTAssertEqual(published, 0, "nothing is published while the handler fails")
        // (The peer's receipts also come from our own phone, so the stanza's
        // ack, not the sender's status, shows what this device withheld.)
        let kept = await sim.outboxCount(info.jid)
        XCTAssertEqual(kept, 1, "the server keeps the unacknowledged stanza")

        // The server delivers it again after a reconnect; it decrypts as a
        // duplicate, and the kept message goes to the handler again.
        await sim.inject(.dropConnection, device: info.jid)
        try await client.waitForState(.connected, timeout: .seconds(15))
        try await eventually(10, "handed over") { await handled.taken == [p1] }
        try await eventually(5, "published once") { await log.received.map(\.id) == [p1] }
        try await eventually(5, "acked") { await sim.outboxCount(info.jid) == 0 }
        await harness.shutdown(client)
    }

    func testDroppedLinkMidConversationLosesAndDuplicatesNothing() async throws {
        let harness = try await SimHarness.start()
        let sim = harness.sim
        let store = InMemoryDeviceStore()
        let me = "15550100021", peer = "15550100022"
        let client = await harness.messagingClient(store: store)
        let log = EventLog.watching(client)
        let info = try await within(20) { try await harness.qrLogin(client, phone: me) }
        await sim.createPhone(number: peer)
        try await eventually(10, "prekeys uploaded") { await sim.uploadedPreKeyCount(info.jid) == 812 }

        let m1 = try await client.sendText(to: user(peer), text: "m1")
        let p1 = try await sim.sendText(from: peer, to: user(me), text: "p1")
        try await eventually(5, "p1") { await log.received.contains { $0.id == p1 } }

        await sim.inject(.dropConnection, device: info.jid)
        let p2 = try await sim.sendText(from: peer, to: user(me), text: "p2")
        let p3 = try await sim.sendText(from: peer, to: user(me), text: "p3")
        try await eventually(10, "reconnected") { await sim.isOnline(info.jid) }
        try await client.waitForState(.connected, timeout: .seconds(10))
        let m2 = try await within(10) { try await client.sendText(to: user(peer), text: "m2") }
        try await eventually(10, "all arrived") {
            let phoneGot = await sim.receivedMessages(phone: peer).filter { !$0.isFromMe }.count
            return await log.received.count >= 3 && phoneGot >= 2
        }
        try await Task.sleep(for: .milliseconds(300)) // room for a duplicate to show up
        let received = await log.received.map(\.id)
        XCTAssertEqual(received, [p1, p2, p3])
        let offline = await log.offlineCounts
        XCTAssertGreaterThanOrEqual(offline.last ?? 0, 2, "p2 and p3 came in the login's offline batch")
        let receivedTexts = texts(await log.received)
        XCTAssertEqual(receivedTexts, ["p1", "p2", "p3"])
        let atPeer = await sim.receivedMessages(phone: peer).filter { !$0.isFromMe }.map(\.id)
        XCTAssertEqual(atPeer, [m1.id, m2.id])
        await harness.shutdown(client)
    }

    func testLowPreKeyNotificationRefills() async throws {
        let harness = try await SimHarness.start()
        let sim = harness.sim
        let store = InMemoryDeviceStore()
        let feature = MessagingFeature(store: store)
        let client = WAClient(store: store, configuration: await harness.configuration(), features: [feature])
        let log = EventLog.watching(client)
        let info = try await within(20) { try await harness.qrLogin(client, phone: "15550100041") }
        try await eventually(10, "812 uploaded") { await sim.uploadedPreKeyCount(info.jid) == 812 }
        // Peers take all but 4 one-time prekeys: the server warns, the client uploads 50 more.
        for _ in 0..<(812 - 4) { _ = await sim.fetchBundle(for: info.jid) }
        try await eventually(10, "refilled") { await sim.uploadedPreKeyCount(info.jid) == 54 }
        // The client counts an upload once the server answered it, a moment after the server stored it.
        try await eventually(5, "the refill counted") { await feature.preKeyUploads.count == 2 }
        let uploads = await feature.preKeyUploads
        XCTAssertEqual(uploads, [812, 50])
        // The new keys work: with the 4 old ones taken too, a fresh peer opens a session with a new one.
        for _ in 0..<4 { _ = await sim.fetchBundle(for: info.jid) }
        await sim.createPhone(number: "15550100042")
        let id = try await sim.sendText(from: "15550100042", to: user("15550100041"), text: "after refill")
        try await eventually(5, "the client decrypted it") { await log.received.contains { $0.id == id } }
        let left = await sim.uploadedPreKeyCount(info.jid)
        XCTAssertEqual(left, 49)
        await harness.shutdown(client)
    }

    func testRetryReceiptResendsUntilThePhoneDecrypts() async throws {
        let harness = try await SimHarness.start()
        let sim = harness.sim
        let store = InMemoryDeviceStore()
        let client = await harness.messagingClient(store: store)
        let me = "15550100051", peer = "15550100052"
        let info = try await within(20) { try await harness.qrLogin(client, phone: me) }
        await sim.createPhone(number: peer)
        let first = try await client.sendText(to: user(peer), text: "one")
        try await eventually(5, "first decrypted") { await sim.receivedMessages(phone: peer).contains { $0.id == first.id } }

        // The phone loses its session: "two" (a plain msg) fails there; retry #1 gets a resend on the
        // same session (fails again), retry #2 makes the client fetch a fresh bundle and resend as pkmsg.
        try await sim.dropSession(phone: peer, with: info.jid)
        let second = try await client.sendText(to: user(peer), text: "two")
        try await eventually(10, "resent and decrypted") {
            await sim.receivedMessages(phone: peer).contains { $0.id == second.id && $0.text == "two" }
        }
        let copies = await sim.receivedMessages(phone: peer).filter { $0.id == second.id }.count
        XCTAssertEqual(copies, 1)
        let retries = await sim.retryReceiptsSent(phone: peer)
        XCTAssertEqual(retries, 2, "retry #1: same session, still undecryptable; retry #2: fresh bundle")
        await harness.shutdown(client)
    }

    func testClientRetryReceiptMakesThePhoneResend() async throws {
        let harness = try await SimHarness.start()
        let sim = harness.sim
        let store = InMemoryDeviceStore()
        let client = await harness.messagingClient(store: store)
        let log = EventLog.watching(client)
        let me = "15550100081", peer = "15550100082"
        let info = try await within(20) { try await harness.qrLogin(client, phone: me) }
        await sim.createPhone(number: peer)
        try await eventually(10, "prekeys uploaded") { await sim.uploadedPreKeyCount(info.jid) == 812 }
        let first = try await sim.sendText(from: peer, to: user(me), text: "one")
        try await eventually(5, "first") { await log.received.contains { $0.id == first } }

        // Our client loses its session with the phone: "two" fails here; retry #1 → resend on the
        // phone's session (fails again), retry #2 carries our keys → the phone opens a new session
        // from them (no bundle fetched from the server) → pkmsg.
        let serverKeys = await sim.uploadedPreKeyCount(info.jid)
        let loaded = try await store.loadDevice()
        let record = try XCTUnwrap(loaded)
        let signal = try await store.signalStore(for: record)
        // Sessions with a LID-migrated peer are kept under its LID.
        let peerPhone = await sim.phone(peer)
        let peerLID = try XCTUnwrap(peerPhone?.lid)
        try await signal.deleteSession(for: SignalAddress(jid: peerLID))
        let second = try await sim.sendText(from: peer, to: user(me), text: "two")
        try await eventually(10, "decrypted after retries") { await log.received.contains { $0.id == second } }
        let undecryptable = await log.events.filter {
            if case .messageUndecryptable(let failed) = $0 { return failed.id == second }
            return false
        }.count
        XCTAssertEqual(undecryptable, 2)
        let resends = await sim.resendsMade(phone: peer)
        XCTAssertEqual(resends, 2)
        let copies = await log.received.filter { $0.id == second }.count
        XCTAssertEqual(copies, 1)
        let serverKeysAfter = await sim.uploadedPreKeyCount(info.jid)
        XCTAssertEqual(serverKeysAfter, serverKeys, "the retry receipt's keys were used, not a server bundle")
        await harness.shutdown(client)
    }

    func testParticipantHashMismatchRefreshesTheDeviceList() async throws {
        let harness = try await SimHarness.start()
        let sim = harness.sim
        let store = InMemoryDeviceStore()
        let client = await harness.messagingClient(store: store)
        let me = "15550100091", peer = "15550100092"
        _ = try await within(20) { try await harness.qrLogin(client, phone: me) }
        await sim.createPhone(number: peer)
        let first = try await client.sendText(to: user(peer), text: "to the phone only")
        XCTAssertEqual(first.deviceCount, 2, "the peer's phone and our own phone")
        // The peer links a device after our device list was cached.
        let peerStore = InMemoryDeviceStore()
        let peerClient = await harness.messagingClient(store: peerStore)
        let peerLog = EventLog.watching(peerClient)
        let peerInfo = try await within(20) { try await harness.qrLogin(peerClient, phone: peer) }
        try await eventually(10, "peer device prekeys") { await sim.uploadedPreKeyCount(peerInfo.jid) == 812 }
        // The cached list misses it: the server's phash differs, the cache is dropped...
        let stale = try await client.sendText(to: user(peer), text: "stale list")
        XCTAssertEqual(stale.deviceCount, 2)
        // ...so the next send asks usync again and reaches the new device too.
        let fresh = try await client.sendText(to: user(peer), text: "fresh list")
        XCTAssertEqual(fresh.deviceCount, 3)
        try await eventually(5, "the new device decrypted it") { await peerLog.received.contains { $0.id == fresh.id } }
        let staleAtNewDevice = await peerLog.received.contains { $0.id == stale.id }
        XCTAssertFalse(staleAtNewDevice)
        await harness.shutdown(client, peerClient)
    }

    func testPeerReinstallIsAcceptedAndPublished() async throws {
        let harness = try await SimHarness.start()
        let sim = harness.sim
        let store = InMemoryDeviceStore()
        let client = await harness.messagingClient(store: store)
        let log = EventLog.watching(client)
        let me = "15550100101", peer = "15550100102"
        _ = try await within(20) { try await harness.qrLogin(client, phone: me) }
        await sim.createPhone(number: peer)
        let before = try await sim.sendText(from: peer, to: user(me), text: "before")
        try await eventually(5, "before") { await log.received.contains { $0.id == before } }

        try await sim.reinstallPhone(peer)
        let after = try await sim.sendText(from: peer, to: user(me), text: "after reinstall")
        try await eventually(5, "after") { await log.received.contains { $0.id == after } }
        let message = await log.received.first { $0.id == after }
        let change = try XCTUnwrap(message?.identityChange)
        // The peer is LID-migrated: its identity is kept under its LID address.
        let peerPhone = await sim.phone(peer)
        let peerLID = try XCTUnwrap(peerPhone?.lid)
        XCTAssertEqual(change.address, SignalAddress(jid: peerLID))
        XCTAssertNotNil(change.previousKey)
        XCTAssertNotEqual(change.previousKey, change.newKey)
        let published = await log.events.contains { $0 == .identityChanged(change) }
        XCTAssertTrue(published)
        // Our answer goes out on the new session and decrypts on the reinstalled phone.
        let reply = try await client.sendText(to: user(peer), text: "welcome back")
        try await eventually(5, "reply") { await sim.receivedMessages(phone: peer).contains { $0.id == reply.id } }
        await harness.shutdown(client)
    }

    func testGroupTextBothWays() async throws {
        let harness = try await SimHarness.start()
        let sim = harness.sim
        let store = InMemoryDeviceStore()
        let messaging = MessagingFeature(store: store)
        let client = WAClient(store: store, configuration: await harness.configuration(), features: [messaging])
        let log = EventLog.watching(client)
        let me = "15550100061", alice = "15550100062", bob = "15550100063"
        let info = try await within(20) { try await harness.qrLogin(client, phone: me) }
        await sim.createPhone(number: alice)
        await sim.createPhone(number: bob)
        try await eventually(10, "prekeys uploaded") { await sim.uploadedPreKeyCount(info.jid) == 812 }
        let group = try await sim.createGroup(creator: alice, participants: [me, bob], subject: "sim group")

        // Client → group: metadata, usync of three users, SKDM per device, one skmsg.
        let sent = try await within(10) { try await client.sendText(to: group, text: "hello group") }
        XCTAssertEqual(sent.chat, group)
        XCTAssertEqual(sent.deviceCount, 3, "alice's and bob's phones and our own phone get the SKDM")
        for phone in [alice, bob, me] {
            try await eventually(5, "\(phone) decrypted the group text") {
                await sim.receivedMessages(phone: phone).contains { $0.id == sent.id && $0.text == "hello group" && $0.chat == group }
            }
        }
        // In a LID group the receipt names alice by her LID.
        let alicePhone = await sim.phone(alice)
        let aliceLID = try XCTUnwrap(alicePhone).lidUser
        try await eventually(5, "delivered by alice") { await log.statuses(of: sent.id, by: aliceLID).contains(.delivered) }

        // A phone → group: the client installs alice's sender key and decrypts the skmsg.
        let incoming = try await sim.sendGroupText(from: alice, group: group, text: "hi all")
        try await eventually(5, "client received the group text") { await log.received.contains { $0.id == incoming } }
        let message = await log.received.first { $0.id == incoming }
        XCTAssertEqual(message?.chat, group)
        XCTAssertEqual(message?.isGroup, true)
        // New groups are LID-addressed: the stanza names the sender by LID with its phone number in
        // participant_pn; the client presents the phone number, the LID beside it.
        XCTAssertEqual(message?.sender.user, alice)
        XCTAssertEqual(message?.senderLID?.server, JID.lidServer)
        XCTAssertEqual(message?.senderAlt?.server, JID.lidServer)
        XCTAssertEqual(message?.content, .text("hi all", context: nil))
        let atBob = await sim.receivedMessages(phone: bob).contains { $0.id == incoming && $0.text == "hi all" }
        XCTAssertTrue(atBob)
        // A second one from alice rides the installed sender key.
        let again = try await sim.sendGroupText(from: alice, group: group, text: "again")
        try await eventually(5, "second group text") { await log.received.contains { $0.id == again } }

        // A second send: everyone holds our sender key, no SKDM, only the skmsg.
        let second = try await client.sendText(to: group, text: "second")
        XCTAssertEqual(second.deviceCount, 0)
        try await eventually(5, "bob decrypted the skmsg alone") {
            await sim.receivedMessages(phone: bob).contains { $0.id == second.id && $0.text == "second" }
        }
        // Bob leaves: the key is rotated and distributed again to the devices left; bob gets nothing.
        try await sim.removeFromGroup(group, number: bob)
        // The server's w:gp2 notification drops the cached metadata; the next send asks again.
        try await eventually(5, "the client dropped the stale metadata") { await messaging.cachedGroup(group) == nil }
        let rotated = try await client.sendText(to: group, text: "after bob left")
        XCTAssertEqual(rotated.deviceCount, 2, "alice's phone and our own phone get the new key")
        try await eventually(5, "alice decrypted under the new key") {
            await sim.receivedMessages(phone: alice).contains { $0.id == rotated.id && $0.text == "after bob left" }
        }
        let bobGot = await sim.receivedMessages(phone: bob).contains { $0.id == rotated.id }
        XCTAssertFalse(bobGot)

        // Not a member: the metadata query is refused (404), so nothing is sent.
        let other = try await sim.createGroup(creator: alice, participants: [bob], subject: "without me")
        do {
            _ = try await client.sendText(to: other, text: "x")
            XCTFail("sent to a group we are not in")
        } catch let error as WAClientError {
            XCTAssertEqual(error.code, .iqError)
        }
        await harness.shutdown(client)
    }

    func testReplyMentionReactionEditRevokeReachThePhone() async throws {
        let harness = try await SimHarness.start()
        let sim = harness.sim
        let store = InMemoryDeviceStore()
        let client = await harness.messagingClient(store: store)
        let me = "15550100071", peer = "15550100072"
        _ = try await within(20) { try await harness.qrLogin(client, phone: me) }
        await sim.createPhone(number: peer)
        let incoming = try await sim.sendText(from: peer, to: user(me), text: "question")
        let reply = try await client.sendText(
            to: user(peer), text: "answer @peer", replyTo: QuotedMessage(id: incoming, sender: user(peer)), mentions: [user(peer)])
        let reaction = try await client.sendReaction(to: user(peer), messageID: incoming, sender: user(peer), fromMe: false, emoji: "👍")
        let edit = try await client.editText(chat: user(peer), messageID: reply.id, newText: "better answer")
        let revoke = try await client.revoke(chat: user(peer), messageID: reply.id)
        try await eventually(5, "all four at the phone") {
            await sim.receivedMessages(phone: peer).filter { !$0.isFromMe }.count == 4
        }
        let got = await sim.receivedMessages(phone: peer).filter { !$0.isFromMe }
        XCTAssertEqual(got.map(\.id), [reply.id, reaction.id, edit.id, revoke.id])
        XCTAssertEqual(got.map(\.kind), ["text", "reaction", "edit", "revoke"])
        XCTAssertEqual(got[0].text, "answer @peer")
        XCTAssertEqual(got[0].ref, incoming)
        XCTAssertEqual(got[0].mentions, [user(peer).description])
        XCTAssertEqual(got[1].text, "👍")
        XCTAssertEqual(got[1].ref, incoming)
        XCTAssertEqual(got[2].text, "better answer")
        XCTAssertEqual(got[2].ref, reply.id)
        XCTAssertEqual(got[3].ref, reply.id)
        await harness.shutdown(client)
    }

    func testMessagingNeedsTheFeature() async throws {
        let harness = try await SimHarness.start()
        let client = await harness.client()
        do {
            _ = try await client.sendText(to: user("15550100031"), text: "x")
            XCTFail("send without the feature")
        } catch let error as WAClientError {
            XCTAssertEqual(error.code, .messagingDisabled)
        }
        await harness.shutdown(client)
    }
}
