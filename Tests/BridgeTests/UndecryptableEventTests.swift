@testable import Bridge
import BridgeStore
import Foundation
import WABinary
import WAClient
import WASim
import XCTest

/// Issue 14, "nothing silent": every message the phone sends ends in `message.received`,
/// `message.undecryptable` (valid against its schema, with its reason) or a retry, and
/// `identity.changed` / `offline.sync` reach subscribers. Real simulator, store and broker.
final class UndecryptableEventTests: XCTestCase {
    /// Each reason the simulator can produce gives exactly one `message.undecryptable` with that
    /// reason, valid against its schema; the reasons a retry can cure asked the sender for one
    /// (the sender's phone got the retry receipt), the others did not.
    func testEachUndecryptableReasonPublishesOneValidEvent() async throws {
        let rig = try await EventRig.start(devices: ["ev-und"])
        let m = try await rig.manager()
        let (publisher, conn) = try await rig.publish(try XCTUnwrap(m.recorder as? OutboxRecorder))
        let sim = rig.h.sim
        let me = "15557100001", peer = "15557100002", stranger = "15557100003"
        let jid = try await rig.link(m, device: "ev-und", phone: me)
        await sim.createPhone(number: peer, pushName: "Peer")
        await sim.createPhone(number: stranger, pushName: "Stranger")
        let inbox = rig.inbox
        // A session with the peer first: a forged `msg` under it fails its MAC.
        let good = try await sim.sendText(from: peer, to: userJID(me), text: "hello")
        try await waitUntil(20, "message.received") { await inbox.count("message.received") == 1 }

        let badMAC = try await sim.sendUndecryptable(.badMAC, from: peer, to: jid)
        let noSession = try await sim.sendUndecryptable(.noSession, from: stranger, to: jid)
        let identity = try await sim.sendUndecryptable(.invalidDeviceIdentity, from: peer, to: jid)
        let tooMany = try await sim.sendUndecryptable(.tooManyEnc, from: peer, to: jid)
        let expected: [String: (reason: String, retry: Bool)] = [
            badMAC: ("BAD_MAC", true), noSession: ("NO_SESSION", true),
            identity: ("INVALID_DEVICE_IDENTITY", false), tooMany: ("TOO_MANY_ENC", false),
        ]
        try await waitUntil(20, "four message.undecryptable") { await inbox.count("message.undecryptable") == 4 }
        let events = await inbox.of("message.undecryptable")
        for (id, want) in expected {
            let mine = events.filter { $0.data["message_id"]?.stringValue == id }
            XCTAssertEqual(mine.count, 1, "exactly one event for \(want.reason)")
            let e = try XCTUnwrap(mine.first)
            XCTAssertEqual(e.data["reason"]?.stringValue, want.reason)
            XCTAssertEqual(e.data["retry_requested"], .bool(want.retry), want.reason)
            XCTAssertEqual(e.routingKey, "ev-und.message.undecryptable")
        }
        XCTAssertFalse(events.contains { $0.data["message_id"]?.stringValue == good })
        let peerRetries = await sim.retryReceiptsReceived(phone: peer)
        let strangerRetries = await sim.retryReceiptsReceived(phone: stranger)
        XCTAssertEqual(peerRetries, [badMAC], "only the retryable failure asked the peer again")
        XCTAssertEqual(strangerRetries, [noSession])
        let offline = await inbox.count("offline.sync")
        XCTAssertGreaterThanOrEqual(offline, 1, "the login's offline batch is announced")

        // The peer reinstalls: its next message comes under a new identity, accepted and published.
        try await sim.reinstallPhone(peer)
        _ = try await sim.sendText(from: peer, to: userJID(me), text: "new phone")
        try await waitUntil(20, "identity.changed") { await inbox.count("identity.changed") >= 1 }
        try await waitUntil(20, "the message after it") { await inbox.count("message.received") == 2 }
        let changes = await inbox.of("identity.changed")
        let change = try XCTUnwrap(changes.first)
        XCTAssertNotNil(change.data["new_key"]?.stringValue)
        XCTAssertNotNil(change.data["previous_key"]?.stringValue)

        let problems = try schemaProblems(await inbox.events)
        XCTAssertEqual(problems, [], "every event validates against its schemas")
        publisher.cancel()
        await publisher.value
        await conn.close()
        await m.shutdown()
        await rig.shutdown()
    }

    /// The phone sends a mix (good texts, undecryptable ones of every kind and unavailable ones,
    /// interleaved): every id it sent ends exactly once, in message.received or in a final
    /// message.undecryptable; an id in both is one whose event said a retry was requested (an
    /// unavailable message recovered through the phone); every requested retry reached the
    /// sender as a retry receipt or the phone as a placeholder request. Nothing is missing.
    func testNothingTheSimulatorSentIsMissing() async throws {
        let rig = try await EventRig.start(devices: ["ev-count"])
        let m = try await rig.manager()
        let (publisher, conn) = try await rig.publish(try XCTUnwrap(m.recorder as? OutboxRecorder))
        let sim = rig.h.sim
        let me = "15557200001", peer = "15557200002", stranger = "15557200003"
        let jid = try await rig.link(m, device: "ev-count", phone: me)
        await sim.createPhone(number: peer, pushName: "Peer")
        await sim.createPhone(number: stranger, pushName: "Stranger")
        let inbox = rig.inbox
        var sent: [String] = [try await sim.sendText(from: peer, to: userJID(me), text: "first")]
        try await waitUntil(20, "the session") { await inbox.count("message.received") == 1 }
        let kinds: [SimUndecryptableKind] = [.badMAC, .tooManyEnc, .invalidDeviceIdentity, .badMAC]
        for round in 0..<4 {
            for n in 0..<3 { sent.append(try await sim.sendText(from: peer, to: userJID(me), text: "r\(round) m\(n)")) }
            sent.append(try await sim.sendUndecryptable(kinds[round], from: peer, to: jid))
            sent.append(try await sim.sendUndecryptable(.noSession, from: stranger, to: jid))
            if round % 2 == 0 { sent.append(try await sim.sendUndecryptable(.unavailable, from: peer, to: jid, text: "held \(round)")) }
        }
        XCTAssertEqual(Set(sent).count, sent.count)
        let total = sent.count
        try await waitUntil(30, "every message accounted for") {
            let (r, u) = (await inbox.count("message.received"), await inbox.count("message.undecryptable"))
            return r == 15 && u == total - 13
        }
        let received = await inbox.of("message.received").compactMap { $0.data["message_id"]?.stringValue }
        let failed = await inbox.of("message.undecryptable")
        let failedIDs = failed.compactMap { $0.data["message_id"]?.stringValue }
        let retried = Set(await sim.retryReceiptsReceived(phone: peer) + sim.retryReceiptsReceived(phone: stranger))
        for id in sent {
            let r = received.filter { $0 == id }.count, u = failed.filter { $0.data["message_id"]?.stringValue == id }
            XCTAssertLessThanOrEqual(r, 1, "\(id) delivered at most once")
            XCTAssertLessThanOrEqual(u.count, 1, "\(id) reported at most once")
            XCTAssertEqual(r + u.count > 0, true, "\(id) not missing")
            if r == 1, let event = u.first {
                XCTAssertEqual(event.data["retry_requested"], .bool(true), "\(id): reported, then recovered")
            }
        }
        XCTAssertEqual(Set(received + failedIDs), Set(sent), "nothing else, nothing missing")
        XCTAssertEqual(received.count, 15)
        for e in failed where e.data["retry_requested"] == .bool(true) && e.data["reason"] != "UNAVAILABLE" {
            XCTAssertTrue(retried.contains(e.data["message_id"]?.stringValue ?? ""), "a requested retry reached the sender")
        }
        XCTAssertEqual(failed.filter { $0.data["retry_requested"] == .bool(true) }.count, 8, "bad MAC, no session and unavailable ask again")
        let answered = await sim.placeholderRequestsAnswered
        XCTAssertEqual(answered, 2)
        let problems = try schemaProblems(await inbox.events)
        XCTAssertEqual(problems, [])
        publisher.cancel()
        await publisher.value
        await conn.close()
        await m.shutdown()
        await rig.shutdown()
    }

    /// The server hands the device `<unavailable>` instead of ciphertext: `message.undecryptable`
    /// says UNAVAILABLE with the phone asked, the device's own phone answers the placeholder-resend
    /// request, and the message arrives as `message.received` with its id and text.
    func testAnUnavailableMessageIsRecoveredThroughThePhone() async throws {
        let rig = try await EventRig.start(devices: ["ev-unav"])
        let m = try await rig.manager()
        let (publisher, conn) = try await rig.publish(try XCTUnwrap(m.recorder as? OutboxRecorder))
        let sim = rig.h.sim
        let me = "15557300001", peer = "15557300002"
        let jid = try await rig.link(m, device: "ev-unav", phone: me)
        await sim.createPhone(number: peer, pushName: "Peer")
        let inbox = rig.inbox
        let id = try await sim.sendUndecryptable(.unavailable, from: peer, to: jid, text: "kept by the phone")
        try await waitUntil(20, "the recovered message") {
            await inbox.of("message.received").contains { $0.data["message_id"]?.stringValue == id }
        }
        let failed = await inbox.of("message.undecryptable")
        XCTAssertEqual(failed.count, 1)
        let event = try XCTUnwrap(failed.first)
        XCTAssertEqual(event.data["message_id"]?.stringValue, id)
        XCTAssertEqual(event.data["reason"], "UNAVAILABLE")
        XCTAssertEqual(event.data["unavailable_type"], "view_once")
        XCTAssertEqual(event.data["phone_resend_requested"], .bool(true))
        XCTAssertEqual(event.data["retry_requested"], .bool(true))
        let received = await inbox.of("message.received").filter { $0.data["message_id"]?.stringValue == id }
        XCTAssertEqual(received.count, 1)
        XCTAssertEqual(received.first?.data["text"], "kept by the phone")
        XCTAssertEqual(received.first?.data["chat"]?.stringValue, userJID(peer).description)
        XCTAssertEqual(received.first?.data["sender"]?.stringValue, userJID(peer).description)
        let answered = await sim.placeholderRequestsAnswered
        XCTAssertEqual(answered, 1, "the phone answered one request")
        let problems = try schemaProblems(await inbox.events)
        XCTAssertEqual(problems, [])
        publisher.cancel()
        await publisher.value
        await conn.close()
        await m.shutdown()
        await rig.shutdown()
    }

    /// A message that fails to decrypt and whose retry cannot cure it (the sender never sent that
    /// ciphertext) is asked of our phone after the delay; the phone holds its own copy and answers:
    /// `message.undecryptable` says the phone will be asked (delay 5000 ms), then `message.received`
    /// comes once with the text. A phone that never answers leaves it at the event.
    func testAFailedDecryptIsRecoveredFromThePhoneAfterTheDelay() async throws {
        let rig = try await EventRig.start(devices: ["ev-phreq"])
        let m = try await rig.manager()
        let (publisher, conn) = try await rig.publish(try XCTUnwrap(m.recorder as? OutboxRecorder))
        let sim = rig.h.sim
        let me = "15557400001", peer = "15557400002"
        let jid = try await rig.link(m, device: "ev-phreq", phone: me)
        await sim.createPhone(number: peer, pushName: "Peer")
        let inbox = rig.inbox
        _ = try await sim.sendText(from: peer, to: userJID(me), text: "hello")
        try await waitUntil(20, "the session") { await inbox.count("message.received") == 1 }
        let id = try await sim.sendUndecryptable(.badMAC, from: peer, to: jid, text: "kept by my phone", ownPhoneHolds: true)
        try await waitUntil(30, "recovered from the phone") {
            await inbox.of("message.received").contains { $0.data["message_id"]?.stringValue == id }
        }
        let failed = await inbox.of("message.undecryptable").filter { $0.data["message_id"]?.stringValue == id }
        XCTAssertEqual(failed.count, 1)
        XCTAssertEqual(failed.first?.data["reason"], "BAD_MAC")
        XCTAssertEqual(failed.first?.data["phone_resend_requested"], .bool(true))
        XCTAssertEqual(failed.first?.data["phone_resend_delay_ms"], .number(5000))
        let received = await inbox.of("message.received").filter { $0.data["message_id"]?.stringValue == id }
        XCTAssertEqual(received.count, 1)
        XCTAssertEqual(received.first?.data["text"], "kept by my phone")
        let retries = await sim.retryReceiptsReceived(phone: peer)
        XCTAssertEqual(retries, [id], "the sender was asked first")
        let answered = await sim.placeholderRequestsAnswered
        XCTAssertEqual(answered, 1)

        // The phone stops answering: the next one is asked, never answered, stays undecryptable.
        await sim.setAnswersPeerRequests(false, phone: me)
        let lost = try await sim.sendUndecryptable(.badMAC, from: peer, to: jid, text: "never", ownPhoneHolds: true)
        try await waitUntil(30, "the phone asked") { await sim.peerRequestsReceived == 2 }
        let answeredAfter = await sim.placeholderRequestsAnswered
        XCTAssertEqual(answeredAfter, 1, "a silent phone does not answer")
        let lostEvents = await inbox.of("message.undecryptable").filter { $0.data["message_id"]?.stringValue == lost }
        XCTAssertEqual(lostEvents.count, 1)
        let problems = try schemaProblems(await inbox.events)
        XCTAssertEqual(problems, [])
        publisher.cancel()
        await publisher.value
        await conn.close()
        await m.shutdown()
        await rig.shutdown()
    }

    /// A refused pairing (here passkey linking offered; a pairing code whose finish fails takes the
    /// same path) is published as `device.error` PAIRING_REFUSED, valid, instead of being only logged.
    func testARefusedPairingIsPublished() async throws {
        let rig = try await EventRig.start(devices: ["ev-pk"])
        let m = try await rig.manager()
        let (publisher, conn) = try await rig.publish(try XCTUnwrap(m.recorder as? OutboxRecorder))
        let jid = try await rig.link(m, device: "ev-pk", phone: "15557400001")
        let delivered = await rig.h.sim.sendNotification(Node("notification", [
            Attribute("from", .jid(.serverJID)), Attribute("type", "passkey_prologue_request"), Attribute("id", "PK9"),
        ], content: .nodes([Node("passkey_request_options", content: .bytes(Array("{}".utf8)))])), to: jid)
        XCTAssertTrue(delivered)
        let inbox = rig.inbox
        try await waitUntil(15, "device.error") { await inbox.count("device.error") == 1 }
        let errors = await inbox.of("device.error")
        XCTAssertEqual(errors.first?.data["code"], "PAIRING_REFUSED")
        XCTAssertTrue(errors.first?.data["message"]?.stringValue?.contains("client.passkey_unsupported") == true)
        let problems = try schemaProblems(await inbox.events)
        XCTAssertEqual(problems, [])
        publisher.cancel()
        await publisher.value
        await conn.close()
        await m.shutdown()
        await rig.shutdown()
    }
}
