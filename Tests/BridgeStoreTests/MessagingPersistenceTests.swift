import Foundation
import WABinary
import WAClient
import WASignal
import WASim
import XCTest
@testable import BridgeStore

/// `MessagingFeature` on the bridge's SQLite store against WASim: prekeys and
/// sessions survive a process restart (a new BridgeStore on the same files).
final class MessagingPersistenceTests: XCTestCase {
    func testSessionsSurviveARestartOnTheSQLiteStore() async throws {
        let dir = try makeTemporaryDirectory(self)
        let sim = try WASim()
        try await sim.start()
        let me = "15550200001", peer = "15550200002"
        await sim.createPhone(number: me)
        await sim.createPhone(number: peer)
        let configuration = WAClientConfiguration.local(endpoint: await sim.endpoint, noiseRoot: sim.rootPublicKey)
        let id = try DeviceID("msg-device")

        var bridge = try openStore(dir)
        _ = try await bridge.createDevice(id: id)
        var keys = try await bridge.device(id).keys
        var client = WAClient(store: keys, configuration: configuration, features: [MessagingFeature(store: keys)])
        let before = Received()
        before.watch(client)
        var jid: JID?
        for try await event in await client.loginWithQR() {
            switch event {
            case .code(let code) where jid == nil: jid = try await sim.scanQR(phone: me, qr: code.text)
            case .code: break
            case .success: break
            }
        }
        let device = try XCTUnwrap(jid)
        try await waitUntil("812 prekeys") { await sim.uploadedPreKeyCount(device) == 812 }
        let stored = try await keys.preKeyCount()
        XCTAssertEqual(stored, 812)
        let first = try await sim.sendText(from: peer, to: JID(user: me, server: JID.userServer), text: "first")
        try await waitUntil("first") { await before.ids.contains(first) }
        await client.stop()
        try await waitUntil("offline") { await !sim.isOnline(device) }

        // Restart: a new BridgeStore on the same files; the peer's session is still there (msg, not pkmsg).
        bridge = try openStore(dir)
        keys = try await bridge.device(id).keys
        // The peer is LID-migrated: its session is kept under its LID.
        let peerPhone = await sim.phone(peer)
        let peerLID = try XCTUnwrap(peerPhone?.lid)
        let hasSession = try await keys.hasSession(for: SignalAddress(jid: peerLID))
        XCTAssertTrue(hasSession)
        client = WAClient(store: keys, configuration: configuration, features: [MessagingFeature(store: keys)])
        let after = Received()
        after.watch(client)
        try await client.start()
        let second = try await sim.sendText(from: peer, to: JID(user: me, server: JID.userServer), text: "second")
        try await waitUntil("second after restart") { await after.ids.contains(second) }
        let reply = try await client.sendText(to: JID(user: peer, server: JID.userServer), text: "reply")
        try await waitUntil("reply decrypted") { await sim.receivedMessages(phone: peer).contains { $0.id == reply.id } }
        let stillStored = try await keys.preKeyCount()
        XCTAssertEqual(stillStored, 811, "one prekey consumed by the peer's first pkmsg, none uploaded again")
        await client.stop()
        await sim.shutdown()
    }
}

private struct Received: Sendable {
    let box = Box()
    actor Box {
        var ids: [String] = []
        func add(_ id: String) { ids.append(id) }
    }
    var ids: [String] { get async { await box.ids } }
    func watch(_ client: WAClient) {
        let box = self.box
        Task {
            for await event in client.events {
                if case .messageReceived(let message) = event { await box.add(message.id) }
            }
        }
    }
}

private func waitUntil(_ what: String, _ seconds: Double = 10, _ condition: @escaping @Sendable () async -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while ContinuousClock.now < deadline {
        if await condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    XCTFail("\(what) did not happen within \(seconds) s")
    throw WAClientError(.timeout, what)
}
