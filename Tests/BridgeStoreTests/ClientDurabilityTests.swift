import Foundation
import GRDB
import WABinary
import WAClient
import WASignal
import WASim
import XCTest
@testable import BridgeStore

/// The client's durability promises on the SQLite session store, across a
/// reopen of the files (a process restart): a decrypted message not yet
/// handed over, and the one-time prekey id counter.
final class ClientDurabilityTests: XCTestCase {
    func testAMessageDecryptedBeforeACrashSurvivesAReopen() async throws {
        let dir = try makeTemporaryDirectory(self)
        let sim = try WASim()
        try await sim.start()
        let me = "15550200011", peer = "15550200012"
        await sim.createPhone(number: me)
        await sim.createPhone(number: peer)
        let configuration = WAClientConfiguration.local(endpoint: await sim.endpoint, noiseRoot: sim.rootPublicKey)
        let id = try DeviceID("kept-device")

        var bridge = try openStore(dir)
        _ = try await bridge.createDevice(id: id)
        var keys = try await bridge.device(id).keys
        let refusing = Handled(failing: true)
        var client = WAClient(store: keys, configuration: configuration, features: [
            MessagingFeature(store: keys, onMessage: { try await refusing.take($0) }),
        ])
        let device = try await qrLogin(client, sim: sim, phone: me)
        try await poll("812 prekeys") { await sim.uploadedPreKeyCount(device) == 812 }
        let first = try await sim.sendText(from: peer, to: JID(user: me, server: JID.userServer), text: "survives the reopen")
        try await poll("handler tried") { await refusing.attempts == 1 }
        let keptBefore = try await keys.pendingPlaintextCount()
        XCTAssertEqual(keptBefore, 1)
        await client.stop()
        try await poll("offline") { await !sim.isOnline(device) }

        // A new process: new BridgeStore on the same files, new client and feature.
        bridge.closeAll()
        bridge = try openStore(dir)
        keys = try await bridge.device(id).keys
        let taking = Handled(failing: false)
        client = WAClient(store: keys, configuration: configuration, features: [
            MessagingFeature(store: keys, onMessage: { try await taking.take($0) }),
        ])
        try await client.start()
        try await poll("handed over after the reopen") { await taking.taken.count == 1 }
        let taken = await taking.taken
        XCTAssertEqual(taken.map(\.id), [first])
        XCTAssertEqual(taken.map(\.text), ["survives the reopen"])
        try await poll("acked") { await sim.outboxCount(device) == 0 }
        let keptAfter = try await keys.pendingPlaintextCount()
        XCTAssertEqual(keptAfter, 0)
        // A later message is the barrier: the first one was handed over exactly once.
        let second = try await sim.sendText(from: peer, to: JID(user: me, server: JID.userServer), text: "next")
        try await poll("second") { await taking.taken.count == 2 }
        let ids = await taking.taken.map(\.id)
        XCTAssertEqual(ids, [first, second])
        await client.stop()
        await sim.shutdown()
    }

    func testKeptPlaintextsAreSealedBoundedAndWiped() async throws {
        let dir = try makeTemporaryDirectory(self)
        let bridge = try openStore(dir, masterKey: MasterKey.generate())
        let id = try DeviceID("kept-bounds")
        _ = try await bridge.createDevice(id: id)
        let keys = try await bridge.device(id).keys
        try await keys.saveDevice(DeviceRecord.generate())
        let secret = Data("a message body that must not sit on disk in clear".utf8)
        var changes = SignalStoreChanges()
        changes.pendingPlaintexts = [(PendingPlaintextKey(stanza: "s0", part: "0.msg"), secret)]
        try await keys.commit(changes)
        for index in 1..<3 {
            try await keys.storePendingPlaintext(Data([UInt8(index)]), for: PendingPlaintextKey(stanza: "s\(index)", part: "0.msg"))
        }
        let loaded = try await keys.loadPendingPlaintext(PendingPlaintextKey(stanza: "s0", part: "0.msg"))
        XCTAssertEqual(loaded, secret)
        let sessionFile = bridge.folder(of: id).appendingPathComponent("session.sqlite")
        bridge.closeAll()
        XCTAssertNil(try rawBytes(of: sessionFile).range(of: secret), "sealed with the device key")

        let byCount = try await keys.prunePendingPlaintexts(keepingNewest: 2, storedBefore: .distantPast)
        XCTAssertEqual(byCount, 1)
        let oldest = try await keys.loadPendingPlaintext(PendingPlaintextKey(stanza: "s0", part: "0.msg"))
        XCTAssertNil(oldest, "the oldest goes first")
        try await keys.removePendingPlaintexts(stanza: "s1")
        let count = try await keys.pendingPlaintextCount()
        XCTAssertEqual(count, 1)
        let byAge = try await keys.prunePendingPlaintexts(keepingNewest: 10, storedBefore: Date().addingTimeInterval(1))
        XCTAssertEqual(byAge, 1)
        try await keys.storePendingPlaintext(Data([9]), for: PendingPlaintextKey(stanza: "s9", part: "0.msg"))
        try await keys.wipe()
        let afterWipe = try await keys.pendingPlaintextCount()
        XCTAssertEqual(afterWipe, 0)
    }

    func testPreKeyIDsAreNeverReusedAfterConsumptionAndReopen() async throws {
        let dir = try makeTemporaryDirectory(self)
        var bridge = try openStore(dir)
        let id = try DeviceID("prekey-ids")
        _ = try await bridge.createDevice(id: id)
        var keys = try await bridge.device(id).keys
        try await keys.saveDevice(DeviceRecord.generate())
        let first = try await keys.allocatePreKeyIDs(5)
        XCTAssertEqual(first, [1, 2, 3, 4, 5])
        try await keys.storePreKeys(first.map { PreKeyRecord(id: $0, keyPair: .generate()) })
        // Peers consumed the highest ones (their rows are gone), then the process restarts.
        try await keys.removePreKey(id: 5)
        try await keys.removePreKey(id: 4)
        bridge.closeAll()
        bridge = try openStore(dir)
        keys = try await bridge.device(id).keys
        let next = try await keys.allocatePreKeyIDs(3)
        XCTAssertEqual(next, [6, 7, 8], "ids 4 and 5 may still be in bundles the server hands out")

        // The 24-bit id space wraps to 1, as on the wire.
        let file = bridge.folder(of: id).appendingPathComponent("session.sqlite")
        bridge.closeAll()
        let raw = try DatabaseQueue(path: file.path)
        try await raw.write { db in try db.execute(sql: "UPDATE preKeyCounter SET nextID = 16777214") }
        try raw.close()
        let wrapped = try await keys.allocatePreKeyIDs(3)
        XCTAssertEqual(wrapped, [16_777_214, 16_777_215, 1])
        let after = try await keys.allocatePreKeyIDs(1)
        XCTAssertEqual(after, [2])
    }
}

/// What a handler was given (id, text), failing while `failing` is set.
private actor Handled {
    private(set) var attempts = 0
    private(set) var taken: [(id: String, text: String?)] = []
    let failing: Bool
    struct Refused: Error {}
    init(failing: Bool) { self.failing = failing }

    func take(_ message: ReceivedMessage) throws {
        attempts += 1
        if failing { throw Refused() }
        if case .text(let text, _) = message.content { taken.append((message.id, text)) } else { taken.append((message.id, nil)) }
    }
}

private func qrLogin(_ client: WAClient, sim: WASim, phone: String) async throws -> JID {
    var jid: JID?
    for try await event in await client.loginWithQR() {
        if case .code(let code) = event, jid == nil { jid = try await sim.scanQR(phone: phone, qr: code.text) }
    }
    return try XCTUnwrap(jid)
}

private func poll(_ what: String, _ seconds: Double = 10, _ condition: @escaping @Sendable () async -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while ContinuousClock.now < deadline {
        if await condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    XCTFail("\(what) did not happen within \(seconds) s")
    throw WAClientError(.timeout, what)
}
