import AdminHTTP
@testable import Bridge
import BridgeStore
import Foundation
import HummingbirdTesting
import WABinary
import WAClient
import WASim
import XCTest

/// `/metrics` counts messages in (recorded events) and out (server acks) per device.
final class MessageMetricsTests: XCTestCase {
    func testMessagesInAndOutOnMetrics() async throws {
        let h = try await AdminHarness.start()
        let sim = h.sim, m = h.manager
        let me = "15557100001", peer = "15557100002"
        try await h.app().test(.live) { client in
            _ = try await call(client, .post, "/devices", json: #"{"id":"count-1"}"#)
            await sim.createPhone(number: me)
            await sim.createPhone(number: peer)
            let qr = try await m.startQRLogin("count-1")
            let jid = try await sim.scanQR(phone: me, qr: qr.text)
            try await m.waitForState("count-1", .connected, timeout: .seconds(15))
            for _ in 0..<200 where await sim.uploadedPreKeyCount(jid) != 812 { try await Task.sleep(for: .milliseconds(50)) }

            let meJID = JID(user: me, server: JID.userServer), peerJID = JID(user: peer, server: JID.userServer)
            try await sim.sendText(from: peer, to: meJID, text: "one")
            try await sim.sendText(from: peer, to: meJID, text: "two")
            let running = try await m.client(of: "count-1")
            let waClient = try XCTUnwrap(running)
            _ = try await waClient.sendText(to: peerJID, text: "back")
            let id = try DeviceID("count-1")
            for _ in 0..<200 where (m.counters.snapshot[id]?.received ?? 0) < 2 || (m.counters.snapshot[id]?.sent ?? 0) < 1 {
                try await Task.sleep(for: .milliseconds(50))
            }

            let metrics = try await call(client, .get, "/metrics")
            let text = String(decoding: metrics.body, as: UTF8.self)
            XCTAssertTrue(text.contains(#"wabridge_messages_received_total{device="count-1"} 2"#), text)
            XCTAssertTrue(text.contains(#"wabridge_messages_sent_total{device="count-1"} 1"#), text)
            XCTAssertTrue(text.contains(#"wabridge_devices{state="connected"} 1"#), text)

            // Counters only go up across scrapes.
            _ = try await waClient.sendText(to: peerJID, text: "again")
            for _ in 0..<200 where (m.counters.snapshot[id]?.sent ?? 0) < 2 { try await Task.sleep(for: .milliseconds(50)) }
            let again = String(decoding: try await call(client, .get, "/metrics").body, as: UTF8.self)
            XCTAssertTrue(again.contains(#"wabridge_messages_sent_total{device="count-1"} 2"#), again)
            XCTAssertTrue(again.contains(#"wabridge_messages_received_total{device="count-1"} 2"#), again)
        }
        await h.shutdown()
    }

    /// WhatsApp moves its minimum past our build: `/metrics` counts the device stopped with
    /// `CLIENT_OUTDATED`, so an alert can fire before users notice.
    func testOutdatedClientIsCountedOnMetrics() async throws {
        let h = try await AdminHarness.start(sim: { $0.minimumAppVersion = [2, 3000, 2_000_000_000] })
        let m = h.manager
        try await h.app().test(.live) { client in
            _ = try await call(client, .post, "/devices", json: #"{"id":"stale-1"}"#)
            _ = try? await m.startQRLogin("stale-1")
            for _ in 0..<200 where m.counters.deviceErrorSnapshot["CLIENT_OUTDATED"] == nil {
                try await Task.sleep(for: .milliseconds(50))
            }
            let text = String(decoding: try await call(client, .get, "/metrics").body, as: UTF8.self)
            XCTAssertTrue(text.contains(#"wabridge_device_errors_total{code="CLIENT_OUTDATED"} 1"#), text)
        }
        await h.shutdown()
    }
}
