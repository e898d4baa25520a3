import Foundation
import WABinary
import WAClient
import WASim
import XCTest

/// Two of our clients linked as companions to one simulated phone (devices 1 and 2 of the
/// same user), as WhatsApp multi-device has them.
final class LinkedDevicesEndToEndTests: XCTestCase {
    nonisolated func text(_ message: ReceivedMessage?) -> String? {
        guard case .text(let text, _)? = message?.content else { return nil }
        return text
    }

    func testTwoCompanionsOfOnePhone() async throws {
        let harness = try await SimHarness.start()
        let sim = harness.sim
        let me = "15550400001", peer = "15550400002"
        let first = await harness.messagingClient(store: InMemoryDeviceStore())
        let second = await harness.messagingClient(store: InMemoryDeviceStore())
        let firstLog = EventLog.watching(first), secondLog = EventLog.watching(second)
        let firstInfo = try await within(20) { try await harness.qrLogin(first, phone: me) }
        let secondInfo = try await within(20) { try await harness.qrLogin(second, phone: me) }
        XCTAssertEqual(firstInfo.jid.user, me)
        XCTAssertEqual(secondInfo.jid.user, me)
        XCTAssertNotEqual(firstInfo.jid.device, secondInfo.jid.device)
        let linked = await sim.linkedDevices(of: me)
        XCTAssertEqual(linked, [firstInfo.jid, secondInfo.jid].sorted { $0.device < $1.device })
        await sim.createPhone(number: peer)

        // Another user writes: the phone and both companions get it.
        let incoming = try await sim.sendText(from: peer, to: user(me), text: "to all of you")
        try await eventually(10, "both companions received") {
            let a = await firstLog.received.contains { $0.id == incoming }
            let b = await secondLog.received.contains { $0.id == incoming }
            return a && b
        }
        let atFirst = await firstLog.received.first { $0.id == incoming }
        let atSecond = await secondLog.received.first { $0.id == incoming }
        XCTAssertEqual(text(atFirst), "to all of you")
        XCTAssertEqual(text(atSecond), "to all of you")
        XCTAssertEqual(atSecond?.isFromMe, false)

        // One companion writes: the peer gets it; the other companion and the phone get our own copy.
        let sent = try await within(10) { try await first.sendText(to: user(peer), text: "from companion one") }
        XCTAssertEqual(sent.deviceCount, 3, "the peer's phone, our phone and the other companion")
        try await eventually(10, "peer, phone and other companion") {
            let peerGot = await sim.receivedMessages(phone: peer).contains { $0.id == sent.id && !$0.isFromMe }
            let phoneGot = await sim.receivedMessages(phone: me).contains { $0.id == sent.id && $0.isFromMe && $0.chat == user(peer) }
            let otherGot = await secondLog.received.contains { $0.id == sent.id }
            return peerGot && phoneGot && otherGot
        }
        let copy = await secondLog.received.first { $0.id == sent.id }
        XCTAssertEqual(copy?.isFromMe, true)
        XCTAssertEqual(copy?.chat, user(peer))
        XCTAssertEqual(copy?.sender, firstInfo.jid)
        XCTAssertEqual(text(copy), "from companion one")
        let senderGotCopy = await firstLog.received.contains { $0.id == sent.id }
        XCTAssertFalse(senderGotCopy, "the sender gets no copy of its own message")

        // The phone unlinks the first companion; the second keeps working both ways.
        await sim.unlink(device: firstInfo.jid)
        let remaining = await sim.linkedDevices(of: me)
        XCTAssertEqual(remaining, [secondInfo.jid])
        let after = try await sim.sendText(from: peer, to: user(me), text: "still there?")
        try await eventually(10, "second companion still receives") { await secondLog.received.contains { $0.id == after } }
        let reply = try await within(10) { try await second.sendText(to: user(peer), text: "yes") }
        try await eventually(10, "peer got the reply, phone its copy") {
            let peerGot = await sim.receivedMessages(phone: peer).contains { $0.id == reply.id && $0.text == "yes" }
            let phoneGot = await sim.receivedMessages(phone: me).contains { $0.id == reply.id && $0.isFromMe }
            return peerGot && phoneGot
        }
        let unlinkedGot = await firstLog.received.contains { $0.id == after }
        XCTAssertFalse(unlinkedGot, "an unlinked companion gets nothing more")
        let unlinkedOutbox = await sim.outboxCount(firstInfo.jid)
        XCTAssertEqual(unlinkedOutbox, 0, "nothing is queued for an unlinked device")
        await harness.shutdown(first, second)
    }
}
