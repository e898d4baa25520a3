@testable import Bridge
import BridgeStore
import Foundation
import Synchronization
import WABinary
import WAClient
import XCTest

/// Keeps what it recorded, in order; refuses `failing` events as a full disk would:
/// the first `failures` attempts of each (nil: every attempt).
final class ScriptedRecorder: EventRecording {
    private struct State {
        var recorded: [CloudEvent] = []
        var attempts: [EventType: Int] = [:]
    }
    private let state = Mutex(State())
    let failing: EventType
    let failures: Int?

    init(failing: EventType, failures: Int?) {
        self.failing = failing
        self.failures = failures
    }

    var recorded: [CloudEvent] { state.withLock { $0.recorded } }
    func attempts(_ type: EventType) -> Int { state.withLock { $0.attempts[type, default: 0] } }

    func record(_ event: CloudEvent) async throws {
        try state.withLock { s in
            s.attempts[event.type, default: 0] += 1
            if event.type == failing, failures.map({ s.attempts[event.type]! <= $0 }) ?? true {
                throw StoreError(.io, "outbox disk full (test)")
            }
            s.recorded.append(event)
        }
    }
}

final class DeviceEventRecordingTests: XCTestCase {
    private func manager(_ h: DeviceHarness, recorder: any EventRecording) async throws -> DeviceManager {
        let client = WAClientConfiguration.local(endpoint: await h.sim.endpoint, noiseRoot: h.sim.rootPublicKey)
        // Short pauses so eight failures take milliseconds; the rule under test is the count, not the time.
        let m = DeviceManager(store: try h.store(),
                              configuration: .init(client: client, reconnectSpread: .milliseconds(100), qrTimeout: .seconds(10),
                                                   eventRetry: EventRetryPolicy(first: .milliseconds(1), cap: .milliseconds(4))),
                              recorder: recorder)
        try await m.start()
        return m
    }

    /// The outbox refuses a state change eight times in a row (five used to be the end
    /// of it): it is recorded on the ninth try, before the logout that followed it.
    func testARefusedStateEventIsRetriedUntilRecordedInOrder() async throws {
        let h = try await DeviceHarness.start()
        let recorder = ScriptedRecorder(failing: .connectionState, failures: 8)
        let m = try await manager(h, recorder: recorder)
        _ = try await m.create(id: "rec1")
        try await m.logout("rec1")  // publishes connection.state (→ logged_out), then logged_out
        let id = try DeviceID("rec1")
        let device = await m.devices[id]
        try await XCTUnwrap(device).flushEvents()

        XCTAssertEqual(recorder.attempts(.connectionState), 9)
        XCTAssertEqual(recorder.recorded.map(\.type), [.deviceCreated, .connectionState, .loggedOut])
        XCTAssertEqual(recorder.recorded.first { $0.type == .connectionState }?.data["to"], "logged_out")
        await m.shutdown()
        await h.shutdown()
    }

    /// An outbox that never takes the event: deleting the device ends the retries (the
    /// event is given up, the next one still recorded) instead of waiting forever.
    func testDeletingTheDeviceEndsTheRetries() async throws {
        let h = try await DeviceHarness.start()
        let recorder = ScriptedRecorder(failing: .connectionState, failures: nil)
        let m = try await manager(h, recorder: recorder)
        _ = try await m.create(id: "rec2")
        try await m.logout("rec2")
        try await within(60) { try await m.delete("rec2") }  // a safety bound: without retirement it never returns

        XCTAssertGreaterThanOrEqual(recorder.attempts(.connectionState), 1)
        XCTAssertEqual(recorder.recorded.map(\.type), [.deviceCreated, .loggedOut, .deviceDeleted])
        let ids = await m.deviceIDs
        XCTAssertEqual(ids, [])
        await m.shutdown()
        await h.shutdown()
    }

    /// The JID the events carry comes from memory now: right after a login (on
    /// `login.success` and on a message received), after a restart (read from the
    /// registry once), absent before login and after logout.
    func testEventsCarryTheJIDAfterLoginAndNoneAfterLogout() async throws {
        let h = try await DeviceHarness.start()
        let recorder = ScriptedRecorder(failing: .commandRejected, failures: 0)
        let m = try await manager(h, recorder: recorder)
        let me = "15557100001", peer = "15557100002"
        _ = try await m.create(id: "jid1")
        await h.sim.createPhone(number: me)
        await h.sim.createPhone(number: peer)
        let qr = try await within(15) { try await m.startQRLogin("jid1") }
        let sim = h.sim
        let jid = try await within(15) { try await sim.scanQR(phone: me, qr: qr.text) }
        try await m.waitForState("jid1", .connected, timeout: .seconds(15))
        try await waitUntil(15, "prekeys uploaded") { await sim.uploadedPreKeyCount(jid) == 812 }
        _ = try await sim.sendText(from: peer, to: userJID(me), text: "hello")
        try await waitUntil(15, "message.received") { recorder.recorded.contains { $0.type == .messageReceived } }

        // A restart: the new actor starts from what the registry holds.
        await m.shutdown()
        let restartedAt = recorder.recorded.count
        let m2 = try await manager(h, recorder: recorder)
        try await m2.waitForState("jid1", .connected, timeout: .seconds(15))
        _ = try await sim.sendText(from: peer, to: userJID(me), text: "again")
        try await waitUntil(15, "second message.received") {
            recorder.recorded.filter { $0.type == .messageReceived }.count == 2
        }
        let beforeLogout = recorder.recorded.count
        try await m2.logout("jid1")
        let id = try DeviceID("jid1")
        let device = await m2.devices[id]
        try await XCTUnwrap(device).flushEvents()

        let events = recorder.recorded
        let login = try XCTUnwrap(events.firstIndex { $0.type == .loginSuccess })
        XCTAssertEqual(events[login].jid, jid.description)
        XCTAssertEqual(events.first { $0.type == .messageReceived }?.jid, jid.description)
        for e in events[..<login] { XCTAssertNil(e.jid, "\(e.type.rawValue) before login") }
        let restarted = events[restartedAt..<beforeLogout]
        XCTAssertEqual(restarted.filter { $0.type == .messageReceived }.count, 1)
        XCTAssertTrue(restarted.contains { $0.data["to"] == "connected" })
        for e in restarted { XCTAssertEqual(e.jid, jid.description, "\(e.type.rawValue) after the restart") }
        // Stopping first may publish `disconnected` (still logged in, JID right); then the
        // logout: `connection.state` → logged_out and `logged_out`, both without a JID.
        let afterLogout = Array(events[beforeLogout...])
        XCTAssertEqual(afterLogout.suffix(2).map(\.type), [.connectionState, .loggedOut])
        let loggedOut = afterLogout.filter { $0.type == .loggedOut || $0.data["to"] == "logged_out" }
        XCTAssertFalse(loggedOut.isEmpty)
        for e in loggedOut { XCTAssertNil(e.jid, "\(e.type.rawValue) after logout") }
        for e in afterLogout where e.data["to"] == "disconnected" { XCTAssertEqual(e.jid, jid.description) }
        let slot = try await m2.get("jid1")
        XCTAssertNil(slot.jid, "the registry agrees")
        await m2.shutdown()
        await h.shutdown()
    }

    func testRetryPausesDoubleUpToTheCap() {
        let p = EventRetryPolicy()
        XCTAssertEqual((1...8).map { p.delay(afterFailures: $0) },
                       [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800),
                        .milliseconds(1600), .milliseconds(3200), .seconds(5), .seconds(5)])
        XCTAssertEqual(p.delay(afterFailures: 10_000), .seconds(5))
    }
}
