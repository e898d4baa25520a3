import Foundation
import Synchronization
import WABinary
import WAClient
import WASim
import XCTest

/// A receipt's status goes to `onStatus` before the receipt is acked: a handler that
/// throws leaves the receipt with the server, which sends it again on the next login.
final class StatusHandOverTests: XCTestCase {
    func testAReceiptWhoseStatusHandlerFailsIsNotAckedAndComesAgain() async throws {
        let harness = try await SimHarness.start()
        let sim = harness.sim
        let store = InMemoryDeviceStore()
        let me = "15550100081", peer = "15550100082"
        let failing = Mutex(true)
        let seen = Mutex<[MessageStatus]>([])
        let client = WAClient(store: store, configuration: await harness.configuration(), features: [
            MessagingFeature(store: store, onStatus: { update in
                if failing.withLock({ $0 }) { throw WAClientError(.store, "outbox unavailable") }
                seen.withLock { $0.append(update.status) }
            }),
        ])
        let info = try await within(20) { try await harness.qrLogin(client, phone: me) }
        await sim.createPhone(number: peer)
        try await eventually(10, "prekeys uploaded") { await sim.uploadedPreKeyCount(info.jid) == 812 }

        let sent = try await within(10) { try await client.sendText(to: user(peer), text: "status please") }
        // The phone's delivery receipt reaches us, the handler fails: it stays in our outbox at the server.
        try await eventually(10, "the receipt stays unacked") { await sim.outboxCount(info.jid) >= 1 }
        XCTAssertTrue(seen.withLock { $0.isEmpty })

        failing.withLock { $0 = false }
        await sim.inject(.dropConnection, device: info.jid)
        try await eventually(20, "redelivered after the reconnect, handed over, acked") {
            await sim.outboxCount(info.jid) == 0 && seen.withLock { $0.contains(.delivered) }
        }
        XCTAssertNotNil(sent.timestamp)
        await harness.shutdown(client)
    }
}
