import Bridge
import BridgeStore
import Foundation
import WABinary
import WAClient
import WASim
import XCTest

/// A simulator on loopback plus a data folder; builds device managers pointed at both.
struct DeviceHarness {
    let sim: WASim
    let dataDir: URL

    static func start(_ tweak: (inout WASim.Configuration) -> Void = { _ in }) async throws -> DeviceHarness {
        var configuration = WASim.Configuration()
        tweak(&configuration)
        let sim = try WASim(configuration: configuration)
        try await sim.start()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("wabridge-dm-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return DeviceHarness(sim: sim, dataDir: dir.appendingPathComponent("data"))
    }

    func store() throws -> BridgeStore {
        try BridgeStore(configuration: .init(dataDirectory: dataDir))
    }

    func manager(spread: Duration = .milliseconds(200),
                 _ tweak: (inout WAClientConfiguration) -> Void = { _ in }) async throws -> DeviceManager {
        var client = WAClientConfiguration.local(endpoint: await sim.endpoint, noiseRoot: sim.rootPublicKey)
        client.keepalive = KeepalivePolicy(minInterval: .seconds(5), maxInterval: .seconds(5), timeout: .seconds(5))
        tweak(&client)
        let m = DeviceManager(store: try store(),
                              configuration: .init(client: client, reconnectSpread: spread, qrTimeout: .seconds(10)))
        try await m.start()
        return m
    }

    func shutdown() async {
        await sim.shutdown()
        try? FileManager.default.removeItem(at: dataDir.deletingLastPathComponent())
    }
}

/// Fails instead of hanging when `body` takes longer than `seconds`.
func within<T: Sendable>(_ seconds: Double, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .seconds(seconds))
            throw DeviceError(.unavailable, "timed out after \(seconds) s")
        }
        let value = try await group.next()!
        group.cancelAll()
        return value
    }
}

func assertDeviceError<T>(_ code: DeviceError.Code, _ body: () async throws -> T,
                          file: StaticString = #filePath, line: UInt = #line) async {
    do {
        _ = try await body()
        XCTFail("expected \(code)", file: file, line: line)
    } catch let e as DeviceError {
        XCTAssertEqual(e.code, code, e.message, file: file, line: line)
    } catch {
        XCTFail("expected \(code), got \(error)", file: file, line: line)
    }
}

final class DeviceManagerTests: XCTestCase {
    func testCreateListGetDeleteAndIDRules() async throws {
        let h = try await DeviceHarness.start()
        let m = try await h.manager()
        let a = try await m.create(id: "sales-1")
        XCTAssertEqual(a.id, "sales-1")
        XCTAssertEqual(a.state, .disconnected)
        let generated = try await m.create()
        XCTAssertNotNil(UUID(uuidString: generated.id), "generated IDs are UUIDs")
        await assertDeviceError(.exists) { try await m.create(id: "sales-1") }
        for bad in ["", "-x", "a b", "ä", String(repeating: "a", count: 65), "../etc", "a/b"] {
            await assertDeviceError(.idInvalid) { try await m.create(id: bad) }
        }
        let listed = try await m.list().map(\.id).sorted()
        XCTAssertEqual(listed, ["sales-1", generated.id].sorted())
        await assertDeviceError(.notFound) { try await m.get("nope") }
        await assertDeviceError(.idInvalid) { try await m.get("a b") }
        let folder = h.dataDir.appendingPathComponent("devices/sales-1")
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder.path))
        try await m.delete("sales-1")
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.path), "delete removes the folder")
        await assertDeviceError(.notFound) { try await m.get("sales-1") }
        await assertDeviceError(.notFound) { try await m.delete("sales-1") }
        await m.shutdown()
        await h.shutdown()
    }

    func testDefaultDeviceRule() async throws {
        let h = try await DeviceHarness.start()
        let m = try await h.manager()
        await assertDeviceError(.notFound) { try await m.resolve(deviceID: nil) }
        await assertDeviceError(.notFound) { try await m.resolve(deviceID: "x") }
        await assertDeviceError(.idInvalid) { try await m.resolve(deviceID: "a b") }
        _ = try await m.create(id: "one")
        let only = try await m.resolve(deviceID: nil)
        XCTAssertEqual(only.rawValue, "one")
        let empty = try await m.resolve(deviceID: "")
        XCTAssertEqual(empty.rawValue, "one")
        let named = try await m.resolve(deviceID: "one")
        XCTAssertEqual(named.rawValue, "one")
        await assertDeviceError(.notFound) { try await m.resolve(deviceID: "two") }
        _ = try await m.create(id: "two")
        await assertDeviceError(.idRequired) { try await m.resolve(deviceID: nil) }
        let two = try await m.resolve(deviceID: "two")
        XCTAssertEqual(two.rawValue, "two")
        await assertDeviceError(.notFound) { try await m.resolve(deviceID: "three") }
        try await m.delete("one")
        let back = try await m.resolve(deviceID: nil)
        XCTAssertEqual(back.rawValue, "two")
        await m.shutdown()
        await h.shutdown()
    }

    func testQRLoginRestartLogoutAndUnlink() async throws {
        let h = try await DeviceHarness.start()
        let m = try await h.manager()
        _ = try await m.create(id: "qr")
        let events = m.events
        let collector = Task { () -> [DeviceEvent] in
            var seen: [DeviceEvent] = []
            for await e in events {
                seen.append(e)
                if case .loggedIn = e.kind { break }
            }
            return seen
        }
        await h.sim.createPhone(number: "15550101010")
        let qr = try await within(15) { try await m.startQRLogin("qr") }
        XCTAssertTrue(qr.expiresAt > Date())
        let again = try await m.startQRLogin("qr")
        XCTAssertEqual(again.text, qr.text, "the showing code is returned again")
        let jid = try await within(15) { try await h.sim.scanQR(phone: "15550101010", qr: qr.text) }
        try await m.waitForState("qr", .connected, timeout: .seconds(15))
        let info = try await m.get("qr")
        XCTAssertEqual(info.jid, jid.description)
        let seen = try await within(5) { await collector.value }
        XCTAssertTrue(seen.contains { if case .qr = $0.kind { true } else { false } })
        XCTAssertTrue(seen.contains { if case .state(_, .connecting, _) = $0.kind { true } else { false } })
        await assertDeviceError(.alreadyLoggedIn) { try await m.startQRLogin("qr") }

        // Restart: a new manager on the same folder reconnects from disk.
        await m.shutdown()
        let m2 = try await h.manager()
        try await m2.waitForState("qr", .connected, timeout: .seconds(15))
        let online = await h.sim.isOnline(jid)
        XCTAssertTrue(online)

        // Unlink from the phone: logged_out, keys gone, slot kept.
        await h.sim.unlink(device: jid)
        try await m2.waitForState("qr", .loggedOut, timeout: .seconds(15))
        let keys = try await h.store().device(DeviceID("qr")).keys.loadDevice()
        XCTAssertNil(keys, "keys wiped")
        let slot = try await m2.get("qr")
        XCTAssertEqual(slot.state, .loggedOut)
        XCTAssertNil(slot.jid)

        // A new login on the same slot works.
        let qr2 = try await within(15) { try await m2.startQRLogin("qr") }
        _ = try await within(15) { try await h.sim.scanQR(phone: "15550101010", qr: qr2.text) }
        try await m2.waitForState("qr", .connected, timeout: .seconds(15))

        // Logout from our side: keys wiped, slot kept.
        try await m2.logout("qr")
        let after = try await m2.get("qr")
        XCTAssertEqual(after.state, .loggedOut)
        let keys2 = try await h.store().device(DeviceID("qr")).keys.loadDevice()
        XCTAssertNil(keys2?.isRegistered == true ? keys2 : nil, "no paired keys after logout")
        await assertDeviceError(.notLoggedIn) { try await m2.reconnect("qr") }
        await m2.shutdown()
        await h.shutdown()
    }

    /// A stale client version (our default of 2025) is refused by the server with 405 before any
    /// QR: the device stops with `CLIENT_OUTDATED` as an event and a metric, and does not retry.
    func testStaleVersionStopsWithClientOutdated() async throws {
        let h = try await DeviceHarness.start()
        let m = try await h.manager { $0.appVersion = [2, 3000, 1_027_868_496] }
        _ = try await m.create(id: "old")
        let events = m.events
        let collector = Task { () -> DeviceEvent? in
            for await e in events { if case .error = e.kind { return e } }
            return nil
        }
        await assertDeviceError(.loginFailed) { try await within(15) { try await m.startQRLogin("old") } }
        let event = try await within(10) { await collector.value }
        guard case .error(let code, let message, let reason)? = event?.kind else { return XCTFail("no device error: \(String(describing: event))") }
        XCTAssertEqual(code, "CLIENT_OUTDATED")
        XCTAssertEqual(reason, 405)
        XCTAssertTrue(message.contains("WABRIDGE_WA_VERSION"), message)
        XCTAssertEqual(m.counters.deviceErrorSnapshot["CLIENT_OUTDATED"], 1)
        let info = try await m.get("old")
        XCTAssertEqual(info.state, .disconnected)
        await m.shutdown()
        await h.shutdown()
    }

    func testPairingCodeLoginAndBadPhoneNumbers() async throws {
        let h = try await DeviceHarness.start()
        let m = try await h.manager()
        _ = try await m.create(id: "code")
        for bad in ["", "abc", "0123456789", "+1 23", "1234567890123456789"] {
            await assertDeviceError(.invalidPhoneNumber) { try await m.pairWithCode("code", phone: bad) }
        }
        await h.sim.createPhone(number: "15550202020")
        let code = try await within(20) { try await m.pairWithCode("code", phone: "+15550202020") }
        XCTAssertNotNil(code.range(of: #"^[A-Z0-9]{4}-[A-Z0-9]{4}$"#, options: .regularExpression), code)
        _ = try await within(25) { try await h.sim.enterPairingCode(phone: "15550202020", code: code) }
        try await m.waitForState("code", .connected, timeout: .seconds(15))
        try await m.reconnect("code")
        try await m.waitForState("code", .connected, timeout: .seconds(15))
        try await m.delete("code")
        XCTAssertFalse(FileManager.default.fileExists(atPath: h.dataDir.appendingPathComponent("devices/code").path))
        await m.shutdown()
        await h.shutdown()
    }

    /// A restart with several logged-in devices reconnects them spread over the window,
    /// not all at once.
    func testReconnectAtStartIsSpreadOverTime() async throws {
        let h = try await DeviceHarness.start()
        let m = try await h.manager()
        let n = 4
        for i in 0..<n {
            _ = try await m.create(id: "d\(i)")
            await h.sim.createPhone(number: "1555080808\(i)")
            let qr = try await within(15) { try await m.startQRLogin("d\(i)") }
            _ = try await within(15) { try await h.sim.scanQR(phone: "1555080808\(i)", qr: qr.text) }
            try await m.waitForState("d\(i)", .connected, timeout: .seconds(15))
        }
        await m.shutdown()

        let spread = Duration.milliseconds(1600)
        let m2 = try await h.manager(spread: spread)
        let events = m2.events
        let t0 = Date()
        let times = try await within(20) { () -> [Date] in
            var connected: [Date] = []
            for await e in events {
                if case .state(_, .connected, _) = e.kind { connected.append(e.time) }
                if connected.count == n { break }
            }
            return connected
        }
        let first = try XCTUnwrap(times.min()), last = try XCTUnwrap(times.max())
        // Device i waits spread·i/n: the last starts 1.2 s after the first.
        XCTAssertGreaterThan(last.timeIntervalSince(first), 0.9, "reconnects are spread")
        XCTAssertLessThan(first.timeIntervalSince(t0), 0.8, "the first device does not wait")
        for i in 0..<n { try await m2.waitForState("d\(i)", .connected, timeout: .seconds(5)) }
        await m2.shutdown()
        await h.shutdown()
    }

    /// The QR rotates; the manager hands out the code showing now, and the latest one links.
    func testQRRotatesAndTheLatestCodeLinks() async throws {
        let h = try await DeviceHarness.start {
            $0.limits.firstRefLifetime = .seconds(1)
            $0.limits.laterRefLifetime = .seconds(1)
        }
        let m = try await h.manager {
            $0.qrFirstTimeout = .seconds(1)
            $0.qrLaterTimeout = .seconds(1)
        }
        _ = try await m.create(id: "rot")
        let first = try await within(15) { try await m.startQRLogin("rot") }
        try await Task.sleep(for: .milliseconds(1500))
        let later = try await within(15) { try await m.startQRLogin("rot") }
        XCTAssertNotEqual(later.text, first.text, "a new code after the first expired")
        XCTAssertGreaterThan(later.index, first.index)
        let current = try await m.currentQR("rot")
        await h.sim.createPhone(number: "15550909090")
        _ = try await within(15) { try await h.sim.scanQR(phone: "15550909090", qr: try XCTUnwrap(current).text) }
        try await m.waitForState("rot", .connected, timeout: .seconds(15))
        await m.shutdown()
        await h.shutdown()
    }

    /// Two devices: their own keys and JIDs; unlinking or deleting one leaves the other alone.
    func testTwoDevicesAreIsolated() async throws {
        let h = try await DeviceHarness.start()
        let m = try await h.manager()
        var jids: [String: JID] = [:]
        for (id, phone) in [("a", "15551111111"), ("b", "15552222222")] {
            _ = try await m.create(id: id)
            await h.sim.createPhone(number: phone)
            let qr = try await within(15) { try await m.startQRLogin(id) }
            jids[id] = try await within(15) { try await h.sim.scanQR(phone: phone, qr: qr.text) }
            try await m.waitForState(id, .connected, timeout: .seconds(15))
        }
        let store = try h.store()
        let ra = try await store.device(DeviceID("a")).keys.loadDevice()
        let rb = try await store.device(DeviceID("b")).keys.loadDevice()
        let ka = try XCTUnwrap(ra), kb = try XCTUnwrap(rb)
        XCTAssertNotEqual(ka.jid, kb.jid)
        XCTAssertNotEqual(ka.noiseKey.publicKey, kb.noiseKey.publicKey)
        await h.sim.unlink(device: try XCTUnwrap(jids["a"]))
        try await m.waitForState("a", .loggedOut, timeout: .seconds(15))
        let stillB = try await m.get("b")
        XCTAssertEqual(stillB.state, .connected)
        let kb2 = try await store.device(DeviceID("b")).keys.loadDevice()
        XCTAssertEqual(kb2?.jid, kb.jid, "b's keys untouched")
        try await m.delete("a")
        XCTAssertTrue(FileManager.default.fileExists(atPath: h.dataDir.appendingPathComponent("devices/b/session.sqlite").path))
        let onlineB = await h.sim.isOnline(try XCTUnwrap(jids["b"]))
        XCTAssertTrue(onlineB)
        await m.shutdown()
        await h.shutdown()
    }
}
