import Foundation
import WABinary
import WAClient
import WASim
import WASignal
import XCTest

/// What a message handler was given (id and text), failing while `failing` is set.
actor TakenMessages {
    private(set) var attempts = 0
    private(set) var taken: [(id: String, text: String?)] = []
    var failing: Bool
    struct Refused: Error {}

    init(failing: Bool) { self.failing = failing }

    func take(_ message: ReceivedMessage) throws {
        attempts += 1
        if failing { throw Refused() }
        if case .text(let text, _) = message.content { taken.append((message.id, text)) } else { taken.append((message.id, nil)) }
    }

    var ids: [String] { taken.map(\.id) }
    var texts: [String?] { taken.map(\.text) }
}

/// The crash window between the Signal commit and the hand-over: the
/// plaintext is kept in the store with the ratchet step, so a client that
/// never handed the message over (handler failed, process gone) loses nothing.
final class HandOverDurabilityTests: XCTestCase {
    private func keptCount(_ store: InMemoryDeviceStore) async throws -> Int {
        let loaded = try await store.loadDevice()
        let record = try XCTUnwrap(loaded)
        let signal = try await store.signalStore(for: record)
        return await try XCTUnwrap(signal as? InMemorySignalStore).pendingPlaintextCount
    }

    func testAMessageDecryptedBeforeACrashReachesTheNextClientOnce() async throws {
        let harness = try await SimHarness.start()
        let sim = harness.sim
        let store = InMemoryDeviceStore()
        let me = "15550100061", peer = "15550100062"

        // The first process decrypts but never hands the message over.
        let refusing = TakenMessages(failing: true)
        let first = WAClient(store: store, configuration: await harness.configuration(), features: [
            MessagingFeature(store: store, onMessage: { try await refusing.take($0) }),
        ])
        let info = try await within(20) { try await harness.qrLogin(first, phone: me) }
        await sim.createPhone(number: peer)
        try await eventually(10, "prekeys uploaded") { await sim.uploadedPreKeyCount(info.jid) == 812 }
        let p1 = try await sim.sendText(from: peer, to: user(me), text: "kept across the crash")
        try await eventually(5, "handler tried") { await refusing.attempts == 1 }
        let keptBefore = try await keptCount(store)
        XCTAssertEqual(keptBefore, 1, "the plaintext was stored with the ratchet step")
        await first.stop()
        try await eventually(5, "device offline") { await !sim.isOnline(info.jid) }
        let stillQueued = await sim.outboxCount(info.jid)
        XCTAssertEqual(stillQueued, 1, "not acknowledged, so the server keeps it")

        // A new process (new feature, nothing in memory) on the same store: the
        // redelivered stanza no longer decrypts, the kept plaintext is handed over.
        let taking = TakenMessages(failing: false)
        let second = WAClient(store: store, configuration: await harness.configuration(), features: [
            MessagingFeature(store: store, onMessage: { try await taking.take($0) }),
        ])
        let log = EventLog.watching(second)
        try await second.start()
        try await eventually(10, "handed over") { await taking.ids == [p1] }
        let texts = await taking.texts
        XCTAssertEqual(texts, ["kept across the crash"])
        try await eventually(5, "acked") { await sim.outboxCount(info.jid) == 0 }
        let keptAfter = try await keptCount(store)
        XCTAssertEqual(keptAfter, 0, "deleted once the handler took it")

        // A later message on the same session is the barrier: p1 came exactly once before it.
        let p2 = try await sim.sendText(from: peer, to: user(me), text: "after")
        try await eventually(5, "p2") { await taking.ids.count == 2 }
        let ids = await taking.ids
        XCTAssertEqual(ids, [p1, p2])
        try await eventually(5, "published") { await log.received.count == 2 }
        let published = await log.received.map(\.id)
        XCTAssertEqual(published, [p1, p2])
        await harness.shutdown(second)
    }

    func testAClientStoppedWhileItsHandlerRunsLosesNothing() async throws {
        let harness = try await SimHarness.start()
        let sim = harness.sim
        let store = InMemoryDeviceStore()
        let me = "15550100091", peer = "15550100092"
        // The handler is stuck (say, the outbox write hangs) when the process is told to stop.
        let stuck = TakenMessages(failing: false)
        let first = WAClient(store: store, configuration: await harness.configuration(), features: [
            MessagingFeature(store: store, onMessage: { message in
                try await stuck.take(message)
                try await Task.sleep(for: .seconds(3_600))
            }),
        ])
        let info = try await within(20) { try await harness.qrLogin(first, phone: me) }
        await sim.createPhone(number: peer)
        try await eventually(10, "prekeys uploaded") { await sim.uploadedPreKeyCount(info.jid) == 812 }
        let p1 = try await sim.sendText(from: peer, to: user(me), text: "in flight at stop")
        try await eventually(5, "handler running") { await stuck.attempts == 1 }
        // stop() cancels the run loop; the cancelled handler throws, so the ack is withheld.
        try await within(10) { await first.stop() }
        let queued = await sim.outboxCount(info.jid)
        XCTAssertEqual(queued, 1)

        let taking = TakenMessages(failing: false)
        let second = WAClient(store: store, configuration: await harness.configuration(), features: [
            MessagingFeature(store: store, onMessage: { try await taking.take($0) }),
        ])
        try await second.start()
        try await eventually(10, "handed over") { await taking.ids == [p1] }
        let texts = await taking.texts
        XCTAssertEqual(texts, ["in flight at stop"])
        try await eventually(5, "acked") { await sim.outboxCount(info.jid) == 0 }
        await harness.shutdown(second)
    }

    func testAGroupMessageDecryptedBeforeACrashReachesTheNextClientOnce() async throws {
        let harness = try await SimHarness.start()
        let sim = harness.sim
        let store = InMemoryDeviceStore()
        let me = "15550100081", peer = "15550100082"
        let refusing = TakenMessages(failing: true)
        let first = WAClient(store: store, configuration: await harness.configuration(), features: [
            MessagingFeature(store: store, onMessage: { try await refusing.take($0) }),
        ])
        let info = try await within(20) { try await harness.qrLogin(first, phone: me) }
        await sim.createPhone(number: peer)
        try await eventually(10, "prekeys uploaded") { await sim.uploadedPreKeyCount(info.jid) == 812 }
        let group = try await sim.createGroup(creator: peer, participants: [peer, me], subject: "kept")
        // The first group message carries the sender key (pkmsg) and the skmsg: two kept parts.
        let g1 = try await sim.sendGroupText(from: peer, group: group, text: "group kept")
        try await eventually(5, "handler tried") { await refusing.attempts == 1 }
        let keptBefore = try await keptCount(store)
        XCTAssertEqual(keptBefore, 2, "the sender key message and the group message")
        await first.stop()
        try await eventually(5, "device offline") { await !sim.isOnline(info.jid) }

        let taking = TakenMessages(failing: false)
        let second = WAClient(store: store, configuration: await harness.configuration(), features: [
            MessagingFeature(store: store, onMessage: { try await taking.take($0) }),
        ])
        try await second.start()
        try await eventually(10, "handed over") { await taking.ids == [g1] }
        let texts = await taking.texts
        XCTAssertEqual(texts, ["group kept"])
        try await eventually(5, "acked") { await sim.outboxCount(info.jid) == 0 }
        let keptAfter = try await keptCount(store)
        XCTAssertEqual(keptAfter, 0)
        // The installed sender key still works, and g1 came exactly once before g2.
        let g2 = try await sim.sendGroupText(from: peer, group: group, text: "group next")
        try await eventually(5, "g2") { await taking.ids.count == 2 }
        let ids = await taking.ids
        XCTAssertEqual(ids, [g1, g2])
        await harness.shutdown(second)
    }

    func testKeptPlaintextsAreBoundedByCountAndAge() async throws {
        let store = InMemorySignalStore()
        for index in 0..<3 {
            await store.storePendingPlaintext(Data([UInt8(index)]), for: PendingPlaintextKey(stanza: "s\(index)", part: "0.msg"))
        }
        let byCount = await store.prunePendingPlaintexts(keepingNewest: 2, storedBefore: .distantPast)
        XCTAssertEqual(byCount, 1)
        let oldest = await store.loadPendingPlaintext(PendingPlaintextKey(stanza: "s0", part: "0.msg"))
        XCTAssertNil(oldest, "the oldest goes first")
        let newest = await store.loadPendingPlaintext(PendingPlaintextKey(stanza: "s2", part: "0.msg"))
        XCTAssertEqual(newest, Data([2]))
        let byAge = await store.prunePendingPlaintexts(keepingNewest: 10, storedBefore: Date().addingTimeInterval(1))
        XCTAssertEqual(byAge, 2)
        let left = await store.pendingPlaintextCount
        XCTAssertEqual(left, 0)
    }
}
