@testable import Bridge
import Foundation
import WABinary
import WAClient
import WASim
import XCTest

/// A refused app-state patch reaches subscribers as `app_state.sync_failed`, valid against its
/// schema, and the device stays connected.
final class AppStateEventTests: XCTestCase {
    func testARefusedPatchPublishesAppStateSyncFailed() async throws {
        let rig = try await EventRig.start(devices: ["ev-as"])
        let m = try await rig.manager()
        let (publisher, conn) = try await rig.publish(try XCTUnwrap(m.recorder as? OutboxRecorder))
        let sim = rig.h.sim
        let me = "15557100001"
        _ = try await rig.link(m, device: "ev-as", phone: me)
        try await waitUntil(15, "initial contacts synced") { await sim.appStateVersion(of: me, collection: "critical_unblock_low") == 1 }
        // Whether the device fetches v1 alone first or v1 and v2 together, v1 applies and v2 is refused.
        try await sim.changeAppState(phone: me, collection: "critical_unblock_low",
                                     [.contact(JID(user: "15557109999", server: JID.userServer), fullName: "Forged", firstName: "F")],
                                     corruptMAC: true)
        let inbox = rig.inbox
        try await waitUntil(15, "app_state.sync_failed") { await inbox.count("app_state.sync_failed") == 1 }
        let all = await inbox.of("app_state.sync_failed")
        let failed = try XCTUnwrap(all.first)
        XCTAssertEqual(failed.routingKey, "ev-as.app_state.sync_failed")
        XCTAssertEqual(failed.data["collection"]?.stringValue, "critical_unblock_low")
        XCTAssertEqual(failed.data["code"]?.stringValue, WAClientError.Code.appStatePatchMACMismatch.rawValue)
        XCTAssertEqual(failed.data["version"], .number(1))
        let events = await inbox.events
        let problems = try schemaProblems(events)
        XCTAssertEqual(problems, [], "every event validates against its schemas")
        let state = try await m.get("ev-as").state
        XCTAssertEqual(state, .connected)
        publisher.cancel()
        await publisher.value
        await conn.close()
        await m.shutdown()
        await rig.shutdown()
    }
}
