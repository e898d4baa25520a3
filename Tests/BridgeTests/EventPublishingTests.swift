import AMQP
@testable import Bridge
import BridgeStore
import Foundation
import WABinary
import WAClient
import WAProto
import WASim
import XCTest

/// The event path end to end: WASim phones → DeviceManager → outbox (SQLite) →
/// EventPublisher → a queue bound to `<p>.events` on the real test broker.
final class EventPublishingTests: XCTestCase {
    /// Phone sends text, reply, mention, reaction, edit and revoke; the device sends one
    /// message that a command sent; lifecycle events on the way. Every event has the
    /// right routing key, properties and data, and validates against its schema.
    func testEveryEventArrivesWithItsRoutingKeyPropertiesAndSchema() async throws {
        let rig = try await EventRig.start(devices: ["ev1", "ev1pc"])
        let store = try rig.h.store()
        let m = try await rig.manager()
        let (publisher, conn) = try await rig.publish(try XCTUnwrap(m.recorder as? OutboxRecorder))
        let sim = rig.h.sim
        let me = "15557000001", peer = "15557000002"
        let jid = try await rig.link(m, device: "ev1", phone: me)
        await sim.createPhone(number: peer, pushName: "Peer Phone")

        // Phone → device: the six kinds.
        let t1 = try await sim.sendText(from: peer, to: userJID(me), text: "hello bridge")
        var reply = WAE2E_Message()
        reply.extendedTextMessage.text = "a reply"
        reply.extendedTextMessage.contextInfo.stanzaID = t1
        reply.extendedTextMessage.contextInfo.participant = userJID(peer).description
        let t2 = try await sim.sendMessage(from: peer, to: userJID(me), message: reply)
        var mention = WAE2E_Message()
        mention.extendedTextMessage.text = "hi @\(me)"
        mention.extendedTextMessage.contextInfo.mentionedJid = [userJID(me).description]
        let t3 = try await sim.sendMessage(from: peer, to: userJID(me), message: mention)
        var reaction = WAE2E_Message()
        reaction.reactionMessage.key.remoteJid = userJID(me).description
        reaction.reactionMessage.key.id = t1
        reaction.reactionMessage.key.fromMe = true
        reaction.reactionMessage.text = "👍"
        reaction.reactionMessage.senderTimestampMs = 1
        let t4 = try await sim.sendMessage(from: peer, to: userJID(me), message: reaction)
        var edit = WAE2E_Message()
        edit.protocolMessage.type = .messageEdit
        edit.protocolMessage.key.remoteJid = userJID(me).description
        edit.protocolMessage.key.id = t1
        edit.protocolMessage.key.fromMe = true
        edit.protocolMessage.editedMessage.conversation = "hello bridge (edited)"
        let t5 = try await sim.sendMessage(from: peer, to: userJID(me), message: edit)
        var revoke = WAE2E_Message()
        revoke.protocolMessage.type = .revoke
        revoke.protocolMessage.key.remoteJid = userJID(me).description
        revoke.protocolMessage.key.id = t2
        revoke.protocolMessage.key.fromMe = true
        let t6 = try await sim.sendMessage(from: peer, to: userJID(me), message: revoke)
        var image = WAE2E_Message()
        image.imageMessage.mimetype = "image/jpeg"
        image.imageMessage.caption = "a photo"
        image.imageMessage.fileLength = 12_345
        image.imageMessage.mediaKey = Data(repeating: 0xAB, count: 32)
        image.imageMessage.fileSha256 = Data(repeating: 0x01, count: 32)
        image.imageMessage.fileEncSha256 = Data(repeating: 0x02, count: 32)
        image.imageMessage.directPath = "/v/t62/secret-path"
        image.imageMessage.url = "https://mmg.example/secret-path"
        let t7 = try await sim.sendMessage(from: peer, to: userJID(me), message: image)

        let inbox = rig.inbox
        try await waitUntil(30, "seven message.received") { await inbox.count("message.received") == 7 }
        let received = await inbox.of("message.received")
        XCTAssertEqual(received.map { $0.data["message_id"]?.stringValue }, [t1, t2, t3, t4, t5, t6, t7], "in the phone's order")
        let peerJID = userJID(peer).description
        let peerPhone = await sim.phone(peer)
        let peerLID = try XCTUnwrap(peerPhone?.lid).description
        for e in received {
            XCTAssertEqual(e.data["chat"]?.stringValue, peerJID, "by number where known")
            XCTAssertEqual(e.data["sender"]?.stringValue, peerJID)
            XCTAssertEqual(e.data["chat_lid"]?.stringValue, peerLID, "the LID beside it")
            XCTAssertEqual(e.data["sender_lid"]?.stringValue, peerLID)
            XCTAssertEqual(e.data["from_me"]?.boolValue, false)
            XCTAssertEqual(e.data["is_group"]?.boolValue, false)
            XCTAssertEqual(e.data["push_name"]?.stringValue, "Peer Phone")
            XCTAssertEqual(e.document["jid"]?.stringValue, jid.description, "jid = the device's own JID")
        }
        XCTAssertEqual(received[0].data["kind"], "text")
        XCTAssertEqual(received[0].data["text"], "hello bridge")
        XCTAssertEqual(received[1].data["text"], "a reply")
        XCTAssertEqual(received[1].data["reply_to"], ["id": .string(t1), "sender": .string(peerJID)])
        XCTAssertEqual(received[2].data["mentions"], [.string(userJID(me).description)])
        XCTAssertEqual(received[3].data["kind"], "reaction")
        XCTAssertEqual(received[3].data["reaction"], ["message_id": .string(t1), "emoji": "👍", "from_me": true])
        XCTAssertEqual(received[4].data["kind"], "edit")
        XCTAssertEqual(received[4].data["edit"], ["message_id": .string(t1), "text": "hello bridge (edited)"])
        XCTAssertEqual(received[5].data["kind"], "revoke")
        XCTAssertEqual(received[5].data["revoke"], ["message_id": .string(t2)])
        XCTAssertEqual(received[6].data["kind"], "image")
        XCTAssertEqual(received[6].data["media"], [
            "mimetype": "image/jpeg", "caption": "a photo", "file_length": 12_345,
            "file_sha256": .string(Data(repeating: 0x01, count: 32).base64EncodedString()),
        ])
        let imageBody = String(decoding: received[6].body, as: UTF8.self)
        XCTAssertFalse(imageBody.contains(Data(repeating: 0xAB, count: 32).base64EncodedString()), "no media key")
        XCTAssertFalse(imageBody.contains("secret-path"), "no download path")
        // The same fact always gets the same id: derived from device, chat, sender, message id.
        XCTAssertEqual(received[0].id, EventFactory.derivedID("message.received", "ev1", peerJID, peerJID, t1))

        // Inbound messages are in the device's history too.
        let data = try await store.device(DeviceID("ev1")).data
        let saved = try await data.message(chat: peerJID, id: t1)
        XCTAssertEqual(saved?.kind, "text")
        XCTAssertEqual(saved?.direction, .incoming)

        // Device → phone, sent by a command: its status events name the command.
        let running = try await m.client(of: "ev1")
        let client = try XCTUnwrap(running)
        let outID = "3EB0EVENTSTEST0001"
        _ = try await data.recordCommandResult(commandID: "order-1", messageID: outID, result: "{}", correlationID: "corr-1")
        _ = try await client.sendText(to: userJID(peer), text: "from the bridge", id: outID)
        try await waitUntil(15, "delivered") {
            await inbox.of("message.status").contains { $0.data["status"] == "delivered" && $0.data["message_id"]?.stringValue == outID }
        }
        try await sim.markRead(phone: peer, ids: [outID], chat: userJID(me))
        try await waitUntil(15, "read") {
            await inbox.of("message.status").contains { $0.data["status"] == "read" && $0.data["message_id"]?.stringValue == outID }
        }
        for s in await inbox.of("message.status") {
            XCTAssertEqual(s.data["command_id"], "order-1")
            XCTAssertEqual(s.document["correlationid"], "corr-1")
            XCTAssertEqual(s.properties.correlationID, "corr-1")
            XCTAssertEqual(s.data["chat"]?.stringValue, peerJID)
        }
        let sentStatuses = await inbox.of("message.status").filter { $0.data["status"] == "sent" }
        XCTAssertEqual(sentStatuses.count, 0, "the command path publishes sent; the client's ack only counts")
        let counts = m.counters.snapshot[try DeviceID("ev1")]
        XCTAssertEqual(counts?.received, 7)
        XCTAssertEqual(counts?.sent, 1)

        // A pairing code on a second device, then its deletion.
        _ = try await m.create(id: "ev1pc")
        await sim.createPhone(number: "15557000003")
        let code = try await within(20) { try await m.pairWithCode("ev1pc", phone: "+15557000003") }
        try await waitUntil(15, "login.pair_code") { await inbox.count("login.pair_code") == 1 }
        let shownCode = await inbox.of("login.pair_code").first?.data["code"]?.stringValue
        XCTAssertEqual(shownCode, code)
        try await m.delete("ev1pc")

        // Logout, then delete.
        try await m.logout("ev1")
        try await m.delete("ev1")
        try await waitUntil(15, "both device.deleted") { await inbox.count("device.deleted") == 2 }

        let all = await inbox.events
        let ev1 = all.filter { $0.document["deviceid"] == "ev1" }
        XCTAssertEqual(ev1.first?.eventType, "device.created", "device.created comes first")
        XCTAssertEqual(ev1.last?.eventType, "device.deleted", "device.deleted comes last")
        let types = Set(ev1.map(\.eventType))
        for t in ["device.created", "connection.state", "login.qr", "login.success", "message.received", "message.status",
                  "logged_out", "device.deleted"] {
            XCTAssertTrue(types.contains(t), "\(t) published (saw \(types.sorted()))")
        }
        let states = ev1.filter { $0.eventType == "connection.state" }.compactMap { $0.data["to"]?.stringValue }
        XCTAssertTrue(states.contains("connecting") && states.contains("connected") && states.contains("logged_out"), "\(states)")
        XCTAssertEqual(ev1.first { $0.eventType == "login.success" }?.data["jid"]?.stringValue, jid.description)
        XCTAssertEqual(ev1.first { $0.eventType == "device.deleted" }?.data["device_id"], "ev1")

        for e in all {
            let device = e.document["deviceid"]?.stringValue ?? "?"
            XCTAssertEqual(e.routingKey, "\(device).\(e.eventType)")
            XCTAssertEqual(e.properties.contentType, "application/cloudevents+json")
            XCTAssertEqual(e.properties.deliveryMode, .persistent)
            XCTAssertEqual(e.properties.messageID, e.id)
            XCTAssertEqual(e.properties.type, "wabridge.\(e.eventType).v1")
            XCTAssertEqual(e.properties.appID, "wabridge")
            XCTAssertNotNil(e.properties.timestamp)
            XCTAssertEqual(e.document["source"]?.stringValue, "wabridge/\(device)")
            XCTAssertEqual(e.document["subject"]?.stringValue, device)
        }
        let twice = Dictionary(grouping: all, by: \.id).filter { $0.value.count > 1 }.map { $0.value[0].routingKey }
        XCTAssertEqual(twice, [], "no event id twice")
        let problems = try schemaProblems(all)
        XCTAssertEqual(problems, [], "every event validates against its schemas")

        publisher.cancel()
        await publisher.value
        await conn.close()
        await m.shutdown()
        await rig.shutdown()
    }

    /// A client version the server refuses (405) reaches subscribers as `device.error`
    /// `CLIENT_OUTDATED`, valid against its schema, after the state change to disconnected.
    func testStaleVersionPublishesDeviceError() async throws {
        let rig = try await EventRig.start(devices: ["ev-old"])
        let m = try await rig.manager { $0.appVersion = [2, 3000, 1_027_868_496] }
        let (publisher, conn) = try await rig.publish(try XCTUnwrap(m.recorder as? OutboxRecorder))
        _ = try await m.create(id: "ev-old")
        _ = try? await within(15) { try await m.startQRLogin("ev-old") }
        let inbox = rig.inbox
        try await waitUntil(15, "device.error") { await inbox.count("device.error") == 1 }
        let errors = await inbox.of("device.error")
        let error = try XCTUnwrap(errors.first)
        XCTAssertEqual(error.data["code"]?.stringValue, "CLIENT_OUTDATED")
        XCTAssertEqual(error.data["reason"], .number(405))
        XCTAssertEqual(error.routingKey, "ev-old.device.error")
        let all = await inbox.events
        let problems = try schemaProblems(all)
        XCTAssertEqual(problems, [], "every event validates against its schemas")
        publisher.cancel()
        await publisher.value
        await conn.close()
        await m.shutdown()
        await rig.shutdown()
    }

    /// The broker stops while the phone sends a few hundred messages: the device stays
    /// connected, the outbox grows; when the broker is back every event arrives, in
    /// order, once.
    /// A send refused with 463 (no privacy token) is `failed` with its own stable code; other
    /// refusals stay `SEND_FAILED`.
    func testAPrivacyTokenRefusalHasItsOwnCode() async throws {
        let peer = JID(user: "15550009999", server: JID.userServer)
        func code(_ error: Int) -> String? {
            let update = ReceiptEvent.StatusUpdate(
                status: .failed(code: error), messageIDs: ["3EB0T1"], chat: peer, by: peer, isSelf: true, timestamp: nil)
            let event = EventFactory.status(update, messageID: "3EB0T1", command: nil, device: try! DeviceID("t1"), jid: nil)
            guard case .object(let data) = event.data, case .object(let error)? = data["error"] else { return nil }
            return error["code"]?.stringValue
        }
        XCTAssertEqual(code(463), "PRIVACY_TOKEN_REQUIRED")
        XCTAssertEqual(code(479), "SEND_FAILED")
    }

    func testBrokerDownTheOutboxHoldsAndDrainsInOrderOnReturn() async throws {
        let rig = try await EventRig.start(devices: ["ev2"])
        let store = try rig.h.store()
        let m = try await rig.manager()
        let (publisher, conn) = try await rig.publish(try XCTUnwrap(m.recorder as? OutboxRecorder))
        let sim = rig.h.sim
        let me = "15557000011", peer = "15557000012"
        let jid = try await rig.link(m, device: "ev2", phone: me)
        await sim.createPhone(number: peer)
        let data = try await store.device(DeviceID("ev2")).data
        let inbox = rig.inbox
        try await waitUntil(15, "outbox drained") {
            let deviceLeft = try await data.outboxCount(), registryLeft = try await store.registry.outboxCount()
            let loggedIn = await inbox.count("login.success")
            return deviceLeft == 0 && registryLeft == 0 && loggedIn == 1
        }

        try TestBroker.ctl("stop_app")
        let recordStart = Date()
        let n = 300
        var sent: [String] = []
        do {
            for i in 0..<n { sent.append(try await sim.sendText(from: peer, to: userJID(me), text: "m\(i)")) }
            try await waitUntil(60, "all recorded") { try await data.outboxCount() >= n }
        } catch {
            try? TestBroker.ctl("start_app")
            throw error
        }
        let recordSeconds = Date().timeIntervalSince(recordStart)
        let held = try await data.outboxCount()
        let state = try await m.get("ev2").state
        let online = await sim.isOnline(jid)
        let publishedWhileDown = await inbox.count("message.received")
        try TestBroker.ctl("start_app")
        let drainStart = Date()
        XCTAssertGreaterThanOrEqual(held, n, "the outbox holds every event while the broker is down")
        XCTAssertEqual(state, .connected, "WhatsApp is unaffected")
        XCTAssertTrue(online)
        XCTAssertEqual(publishedWhileDown, 0)

        try await waitUntil(120, "every event after the broker returned") { await inbox.count("message.received") >= n }
        try await waitUntil(30, "outbox empty") { try await data.outboxCount() == 0 }
        // Figures for the report, not expectations.
        print("outage: \(n) messages sent and recorded in \(String(format: "%.2f", recordSeconds)) s with the broker down; "
              + "all published \(String(format: "%.2f", Date().timeIntervalSince(drainStart))) s after start_app returned")
        let received = await inbox.of("message.received")
        XCTAssertEqual(received.map { $0.data["message_id"]?.stringValue ?? "" }, sent, "all, in order")
        XCTAssertEqual(received.map { $0.data["text"]?.stringValue ?? "" }, (0..<n).map { "m\($0)" })
        let all = await inbox.events
        XCTAssertEqual(Set(all.map(\.id)).count, all.count, "no duplicate event ids")
        XCTAssertEqual(try schemaProblems(all), [])

        publisher.cancel()
        await publisher.value
        await conn.close()
        await m.shutdown()
        await rig.shutdown()
    }

    /// Events recorded while no publisher runs stay in the outbox; a new manager and
    /// publisher on the same folder drain them in order (device.created first).
    func testARestartDrainsWhatThePreviousRunLeft() async throws {
        let rig = try await EventRig.start(devices: ["ev3"])
        let store = try rig.h.store()
        let m = try await rig.manager()
        let sim = rig.h.sim
        let me = "15557000021", peer = "15557000022"
        _ = try await rig.link(m, device: "ev3", phone: me)
        await sim.createPhone(number: peer)
        var sent: [String] = []
        for i in 0..<20 { sent.append(try await sim.sendText(from: peer, to: userJID(me), text: "r\(i)")) }
        let data = try await store.device(DeviceID("ev3")).data
        try await waitUntil(30, "recorded") {
            try await data.peekEvents(limit: 1_000).filter { $0.routingKey == "ev3.message.received" }.count == 20
        }
        await m.shutdown()
        let left = try await data.outboxCount()
        let registryLeft = try await store.registry.outboxCount()
        XCTAssertGreaterThanOrEqual(left, 20)
        XCTAssertEqual(registryLeft, 1, "device.created waits in the registry outbox")
        let none = await rig.inbox.events.count
        XCTAssertEqual(none, 0, "nothing published without a publisher")

        let m2 = try await rig.manager()
        let (publisher, conn) = try await rig.publish(try XCTUnwrap(m2.recorder as? OutboxRecorder))
        let inbox = rig.inbox
        try await waitUntil(30, "drained") { await inbox.count("message.received") == 20 }
        try await waitUntil(15, "outbox empty") {
            let deviceLeft = try await data.outboxCount(), registryLeft = try await store.registry.outboxCount()
            return deviceLeft == 0 && registryLeft == 0
        }
        let all = await inbox.events
        XCTAssertEqual(all.first?.eventType, "device.created")
        let drained = await inbox.of("message.received").map { $0.data["message_id"]?.stringValue ?? "" }
        XCTAssertEqual(drained, sent)
        XCTAssertGreaterThanOrEqual(all.count, left + 1)
        XCTAssertEqual(Set(all.map(\.id)).count, all.count)
        XCTAssertEqual(try schemaProblems(all), [])

        publisher.cancel()
        await publisher.value
        await conn.close()
        await m2.shutdown()
        await rig.shutdown()
    }

    /// A receipt goes to WhatsApp only once the event is durable: with a recorder that
    /// throws, the message is never acknowledged (the server keeps it) and nothing is
    /// recorded; once recording works, the redelivered message is recorded once.
    func testNoReceiptUntilTheEventIsDurable() async throws {
        let rig = try await EventRig.start(devices: ["ev4"])
        let store = try rig.h.store()
        let flaky = FlakyRecorder(OutboxRecorder(store: store))
        let m = try await rig.manager(recorder: flaky)
        let sim = rig.h.sim
        let me = "15557000031", peer = "15557000032"
        let jid = try await rig.link(m, device: "ev4", phone: me)
        await sim.createPhone(number: peer)
        let data = try await store.device(DeviceID("ev4")).data
        @Sendable func receivedInOutbox() async throws -> [String] {
            try await data.peekEvents(limit: 1_000).compactMap { e -> String? in
                guard e.routingKey == "ev4.message.received" else { return nil }
                return JSONValue.parse(e.payload)?["data"]?["message_id"]?.stringValue
            }
        }

        let p1 = try await sim.sendText(from: peer, to: userJID(me), text: "p1")
        try await waitUntil(15, "the recorder was tried") { flaky.attempts >= 1 }
        // Give a wrongly sent receipt or ack time to reach the server (a bound, not an expectation).
        try await Task.sleep(for: .milliseconds(500))
        let kept = await sim.outboxCount(jid)
        XCTAssertEqual(kept, 1, "no receipt, no ack: WhatsApp keeps the message")
        let recorded = try await receivedInOutbox()
        XCTAssertEqual(recorded, [], "nothing recorded")
        XCTAssertEqual(m.counters.snapshot[try DeviceID("ev4")]?.received ?? 0, 0)

        flaky.setFailing(false)
        await sim.inject(.dropConnection, device: jid)
        try await waitUntil(20, "redelivered and recorded") { try await receivedInOutbox() == [p1] }
        try await waitUntil(10, "acknowledged") { await sim.outboxCount(jid) == 0 }
        let recordedOnce = try await receivedInOutbox()
        XCTAssertEqual(recordedOnce, [p1], "recorded once")
        XCTAssertEqual(m.counters.snapshot[try DeviceID("ev4")]?.received, 1)

        await m.shutdown()
        await rig.shutdown()
    }

    /// Devices are independent: a device with a backlog of thousands does not hold
    /// up another device's event (its lane publishes alongside).
    func testOneDevicesBacklogDoesNotHoldUpAnother() async throws {
        let rig = try await EventRig.start(devices: ["evA", "evB"])
        let m = try await rig.manager()
        let recorder = try XCTUnwrap(m.recorder as? OutboxRecorder)
        _ = try await m.create(id: "evA")
        _ = try await m.create(id: "evB")
        let a = try DeviceID("evA"), b = try DeviceID("evB")
        let backlog = 3_000
        for i in 0..<backlog {
            try await recorder.record(CloudEvent(id: "a-\(i)", type: .connectionState, deviceID: a,
                                                 data: ["from": "connecting", "to": "connected", "reason": .string("n\(i)")]))
        }
        try await recorder.record(CloudEvent(id: "b-0", type: .connectionState, deviceID: b,
                                             data: ["from": "connecting", "to": "connected", "reason": "b"]))
        let (publisher, conn) = try await rig.publish(recorder)
        let inbox = rig.inbox
        try await waitUntil(60, "everything") { await inbox.count("connection.state") == backlog + 1 }
        let states = await inbox.of("connection.state")
        let ofA = states.filter { $0.document["deviceid"] == "evA" }.map(\.id)
        XCTAssertEqual(ofA, (0..<backlog).map { "a-\($0)" }, "a device's events in order")
        let bAt = try XCTUnwrap(states.firstIndex { $0.id == "b-0" })
        XCTAssertLessThan(bAt, backlog / 2, "evB's event went out while evA's backlog drained (position \(bAt))")

        publisher.cancel()
        await publisher.value
        await conn.close()
        await m.shutdown()
        await rig.shutdown()
    }

    /// The bounded record of published ids: an event recorded again after the broker
    /// confirmed it (a redelivery after a crash) is not published again.
    func testAFactAlreadyPublishedIsNotRecordedAgain() async throws {
        let rig = try await EventRig.start(devices: ["ev5"])
        let store = try rig.h.store()
        let m = try await rig.manager()
        let recorder = try XCTUnwrap(m.recorder as? OutboxRecorder)
        let (publisher, conn) = try await rig.publish(recorder)
        _ = try await m.create(id: "ev5")
        let id = try DeviceID("ev5")
        let event = CloudEvent(id: EventFactory.derivedID("message.received", "ev5", "a", "b", "X1"), type: .messageReceived,
                               deviceID: id, data: ["message_id": "X1"])
        try await recorder.record(event)
        let inbox = rig.inbox
        try await waitUntil(15, "published") { await inbox.count("message.received") == 1 }
        let data = try await store.device(id).data
        try await waitUntil(15, "confirmed") { try await data.outboxCount() == 0 }
        let published = try await data.isPublished(eventID: event.id)
        XCTAssertTrue(published)
        try await recorder.record(event)
        let after = try await data.outboxCount()
        XCTAssertEqual(after, 0, "a published id is not appended again")
        // A later event still goes out, and the earlier one did not come back.
        try await m.delete("ev5")
        try await waitUntil(15, "device.deleted") { await inbox.count("device.deleted") == 1 }
        let once = await inbox.count("message.received")
        XCTAssertEqual(once, 1)

        publisher.cancel()
        await publisher.value
        await conn.close()
        await m.shutdown()
        await rig.shutdown()
    }
}
