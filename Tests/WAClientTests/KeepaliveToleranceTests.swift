import Foundation
import WABinary
import WAClient
import WASim
import XCTest

/// Keepalive tolerance: unanswered pings on a link that otherwise shows life
/// (the server answers other IQs) are tolerated up to `maxFailTime`; a silent
/// server is still caught within `detectionBound`
/// (`ConnectionEndToEndTests.testSilentServerIsDetectedWithinKeepaliveBound`).
final class KeepaliveToleranceTests: XCTestCase {
    /// Keeps the link busy with IQs the simulator answers until `done` holds.
    private func keepBusy(_ client: WAClient, until done: @escaping @Sendable () async -> Bool) async throws {
        try await within(15) {
            var n = 0
            while await !done() {
                n += 1
                _ = try? await client.sendIQ(PreKeyNodes.countIQ(id: "busy.\(n)"), timeout: .seconds(2))
                try await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    func testUnansweredPingsOnALinkThatShowsLifeAreTolerated() async throws {
        let harness = try await SimHarness.start()
        let policy = KeepalivePolicy(
            minInterval: .milliseconds(200), maxInterval: .milliseconds(200), timeout: .seconds(1), maxFailTime: .seconds(60))
        let client = await harness.client { $0.keepalive = policy }
        let info = try await within(20) { try await harness.qrLogin(client, phone: "15550008891") }
        let before = await client.recentTransitions.count

        await harness.sim.inject(.ignorePings(true), device: info.jid)
        try await keepBusy(client) { await client.keepaliveMisses >= 2 }
        await harness.sim.inject(.ignorePings(false), device: info.jid)
        try await eventually(10, "a ping answered again") { await client.keepaliveMisses == 0 }

        let transitions = await client.recentTransitions.dropFirst(before)
        XCTAssertTrue(transitions.isEmpty, "the link stayed up: \(Array(transitions))")
        let state = await client.state
        XCTAssertEqual(state, .connected)
        await harness.shutdown(client)
    }

    func testPingsUnansweredForMaxFailTimeCloseTheLinkEvenWithTraffic() async throws {
        let harness = try await SimHarness.start()
        let policy = KeepalivePolicy(
            minInterval: .milliseconds(200), maxInterval: .milliseconds(200), timeout: .milliseconds(500), maxFailTime: .seconds(2))
        let client = await harness.client { $0.keepalive = policy }
        let info = try await within(20) { try await harness.qrLogin(client, phone: "15550008892") }
        let before = await client.recentTransitions.count

        await harness.sim.inject(.ignorePings(true), device: info.jid)
        let started = ContinuousClock.now
        try await keepBusy(client) {
            await client.recentTransitions.dropFirst(before).contains { $0.reason == .keepaliveTimeout }
        }
        let elapsed = ContinuousClock.now - started
        // Not at the first unanswered ping: only once no ping was answered for maxFailTime
        // (the last answer came at most one interval and a timeout before `started`).
        XCTAssertGreaterThanOrEqual(elapsed, policy.maxFailTime - policy.maxInterval - policy.timeout, "closed after \(elapsed)")
        // The bound plus scheduling slack for a loaded 2-core CI machine.
        XCTAssertLessThanOrEqual(elapsed, policy.unansweredPingBound + .seconds(1), "closed after \(elapsed)")
        try await eventually(10, "reconnected") { await client.recentTransitions.last?.to == .connected }
        await harness.shutdown(client)
    }
}
