import Foundation
import WABinary
import WAClient
import WASim
import WASignal
import XCTest

/// Issue 14: after a failed decrypt and our first retry receipt, our phone is asked for the
/// message (whatsmeow delayedRequestMessageFromPhone); whichever copy comes first is delivered,
/// the other dropped. WAClient against WASim.
final class PhoneRequestTests: XCTestCase {
    struct Run {
        let harness: SimHarness
        let client: WAClient
        let feature: MessagingFeature
        let log: EventLog
        let me: String
        let peer: String
    }

    /// A linked client with `delay` as its phone-request delay, one message from `peer` received,
    /// then the client's session with the peer deleted, so the peer's next message fails to decrypt.
    private func linkedThenSessionLost(delay: Duration, me: String, peer: String) async throws -> Run {
        let harness = try await SimHarness.start()
        let sim = harness.sim
        let store = InMemoryDeviceStore()
        var config = MessagingFeature.Configuration()
        config.phoneRequestDelay = delay
        let feature = MessagingFeature(store: store, configuration: config)
        let client = WAClient(store: store, configuration: await harness.configuration(), features: [feature])
        let log = EventLog.watching(client)
        let info = try await within(20) { try await harness.qrLogin(client, phone: me) }
        await sim.createPhone(number: peer)
        try await eventually(10, "prekeys uploaded") { await sim.uploadedPreKeyCount(info.jid) == 812 }
        let first = try await sim.sendText(from: peer, to: user(me), text: "one")
        try await eventually(5, "first") { await log.received.contains { $0.id == first } }
        let loaded = try await store.loadDevice()
        let signal = try await store.signalStore(for: try XCTUnwrap(loaded))
        let peerPhone = await sim.phone(peer)
        try await signal.deleteSession(for: SignalAddress(jid: try XCTUnwrap(peerPhone?.lid)))
        return Run(harness: harness, client: client, feature: feature, log: log, me: me, peer: peer)
    }
    /// The client loses its session with the peer: "two" fails, retry #1 fails again, retry #2
    /// brings a pkmsg; meanwhile (no delay configured) our phone, which received "two" itself,
    /// answers the request. Exactly one copy is delivered, the other is dropped and counted.
    func testTheRetryAndThePhonesAnswerDeliverTheMessageOnce() async throws {
        let run = try await linkedThenSessionLost(delay: .zero, me: "15550200081", peer: "15550200082")
        let (harness, sim, client, feature, log, me, peer) = (run.harness, run.harness.sim, run.client, run.feature, run.log, run.me, run.peer)
        let second = try await sim.sendText(from: peer, to: user(me), text: "two")
        try await eventually(20, "delivered and the other copy dropped") {
            let delivered = await log.received.contains { $0.id == second }
            let dropped = await feature.recoveryDuplicatesDropped
            return delivered && dropped == 1
        }
        let copies = await log.received.filter { $0.id == second }
        XCTAssertEqual(copies.count, 1, "delivered once")
        guard case .text(let text, _) = try XCTUnwrap(copies.first).content else { return XCTFail("not a text") }
        XCTAssertEqual(text, "two")
        let firstFailure = await log.events.compactMap { event -> UndecryptableMessage? in
            if case .messageUndecryptable(let failed) = event, failed.id == second, failed.retryCount == 1 { return failed }
            return nil
        }.first
        XCTAssertEqual(firstFailure?.phoneResendRequested, true, "the phone was asked after the first retry receipt")
        let answered = await sim.placeholderRequestsAnswered
        XCTAssertEqual(answered, 1, "the phone answered from its own copy")
        let pending = await feature.pendingPhoneRequests
        XCTAssertEqual(pending, 0)
        await harness.shutdown(client)
    }

    /// A message the sender's retry cures before the delay is not asked of the phone.
    func testARetryThatArrivesInTimeCancelsThePhoneRequest() async throws {
        let run = try await linkedThenSessionLost(delay: .seconds(600), me: "15550200091", peer: "15550200092")
        let (harness, sim, client, feature, log, me, peer) = (run.harness, run.harness.sim, run.client, run.feature, run.log, run.me, run.peer)
        let second = try await sim.sendText(from: peer, to: user(me), text: "two")
        try await eventually(20, "decrypted after retries") { await log.received.contains { $0.id == second } }
        let pending = await feature.pendingPhoneRequests
        XCTAssertEqual(pending, 0, "the delayed request was cancelled by the retry")
        let asked = await sim.peerRequestsReceived
        XCTAssertEqual(asked, 0)
        await harness.shutdown(client)
    }
}
