import Foundation
import WABinary
import WAClient
import WASim
import XCTest

/// A send whose server `<ack>` never comes (the simulator's missing-answers fault).
final class AckTimeoutTests: XCTestCase {
    func testAMissingAckFailsTheSendFreesItsSlotAndALateAckIsIgnored() async throws {
        let harness = try await SimHarness.start()
        let sim = harness.sim
        let store = InMemoryDeviceStore()
        let me = "15550100071", peer = "15550100072"
        var configuration = MessagingFeature.Configuration()
        configuration.ackTimeout = .milliseconds(400)
        configuration.maxPendingSends = 1 // a slot not freed would refuse the next send
        let client = WAClient(store: store, configuration: await harness.configuration(), features: [
            MessagingFeature(store: store, configuration: configuration),
        ])
        let log = EventLog.watching(client)
        let info = try await within(20) { try await harness.qrLogin(client, phone: me) }
        await sim.createPhone(number: peer)
        try await eventually(10, "prekeys uploaded") { await sim.uploadedPreKeyCount(info.jid) == 812 }

        await sim.inject(.withholdAcks(true), device: info.jid)
        for text in ["no ack 1", "no ack 2"] {
            do {
                _ = try await within(10) { try await client.sendText(to: user(peer), text: text) }
                XCTFail("a send without an ack must fail")
            } catch let error as WAClientError {
                XCTAssertEqual(error.code, .ackTimeout, "\(error)")
            }
        }
        @Sendable func failedIDs() async -> [String] {
            await log.events.compactMap { event -> String? in
                guard case .messageStatus(let update) = event, update.status == .failed(code: MessageStatus.noServerAck) else { return nil }
                return update.messageIDs.first
            }
        }
        try await eventually(5, "each timed-out send reports status failed") { await failedIDs().count == 2 }
        let timedOut = await failedIDs()
        XCTAssertEqual(Set(timedOut).count, 2)
        // The messages were routed all the same: the phone has them.
        try await eventually(5, "routed") { await sim.receivedMessages(phone: peer).filter { !$0.isFromMe }.count == 2 }

        // The late acks arrive and match nothing; the next send gets its own ack.
        await sim.inject(.withholdAcks(false), device: info.jid)
        let sent = try await within(10) { try await client.sendText(to: user(peer), text: "acked") }
        XCTAssertFalse(timedOut.contains(sent.id))
        XCTAssertNotNil(sent.timestamp)
        let state = await client.state
        XCTAssertEqual(state, .connected)
        await harness.shutdown(client)
    }

    /// A send waiting for its ack when the link drops fails at once, retryable
    /// (`client.connection_closed`), not after `ackTimeout`; the client reconnects and
    /// a resend with the same id goes out.
    func testALinkDroppedBeforeTheAckFailsTheSendAtOnce() async throws {
        let harness = try await SimHarness.start()
        let sim = harness.sim
        let store = InMemoryDeviceStore()
        let me = "15550100073", peer = "15550100074"
        var configuration = MessagingFeature.Configuration()
        configuration.ackTimeout = .seconds(120)  // far beyond the test's bound
        let client = WAClient(store: store, configuration: await harness.configuration(), features: [
            MessagingFeature(store: store, configuration: configuration),
        ])
        let info = try await within(20) { try await harness.qrLogin(client, phone: me) }
        await sim.createPhone(number: peer)
        try await eventually(10, "prekeys uploaded") { await sim.uploadedPreKeyCount(info.jid) == 812 }

        await sim.inject(.withholdAcks(true), device: info.jid)
        let send = Task { try await client.sendText(to: user(peer), text: "cut off", id: "3EB0CUTOFF0001") }
        try await eventually(10, "routed") { await sim.receivedMessages(phone: peer).contains { $0.id == "3EB0CUTOFF0001" } }
        await sim.inject(.dropConnection, device: info.jid)
        do {
            _ = try await within(20) { try await send.value }
            XCTFail("a send whose link dropped before the ack must fail")
        } catch let error as WAClientError {
            XCTAssertEqual(error.code, .connectionClosed, "\(error)")
        }
        try await eventually(20, "reconnected") { await client.state == .connected }
        await sim.inject(.withholdAcks(false), device: info.jid)
        let again = try await within(10) { try await client.sendText(to: user(peer), text: "cut off", id: "3EB0CUTOFF0001") }
        XCTAssertEqual(again.id, "3EB0CUTOFF0001")
        await harness.shutdown(client)
    }
}
