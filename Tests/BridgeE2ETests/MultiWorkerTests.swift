import AMQP
import Foundation
import WABinary
import WASim
import WATestSupport
import XCTest

/// Several `wabridge serve` processes on one store (SQLite under one data folder, shared by the
/// processes), one broker topology and one simulator: each device has one owner at a time, and
/// its devices move when a worker dies, freezes or stops. Leases of 5 s (renewed every 1.7 s)
/// keep the take-overs short.
final class MultiWorkerTests: XCTestCase {
    private var world: E2EWorld?
    private var extra: [WorkerProcess] = []
    /// The PostgreSQL store of a `…OnPostgreSQL` test.
    private var database: TestDatabase?

    override func tearDown() async throws {
        // A failed run says what each worker logged (the shared store's story is in all of them).
        if let run = testRun, run.failureCount + run.unexpectedExceptionCount > 0 {
            for (i, w) in ([world?.worker].compactMap { $0 } + extra).enumerated() {
                let file = FileManager.default.temporaryDirectory.appendingPathComponent("multiworker-\(name.filter(\.isLetter))-w\(i + 1).log")
                try? w.output.value.write(to: file, atomically: true, encoding: .utf8)
                print("---- worker w\(i + 1): whole output in \(file.path); tail ----\n\(w.output.value.suffix(3000))")
            }
        }
        for w in extra {
            w.send(signal: SIGCONT)
            w.stop()
        }
        extra = []
        if let world { await world.tearDown() }
        world = nil
        database?.drop()
        database = nil
    }

    private struct Cluster {
        let world: E2EWorld
        /// Worker id → admin port.
        var ports: [String: Int]
        var processes: [String: WorkerProcess]
        /// Device id → its JID on the simulator.
        var devices: [String: JID]
        let peer: String
    }

    /// `workers` workers (`w1` is the world's own), `deviceCount` devices each linked through a
    /// different worker's admin HTTP, a peer phone to send to.
    /// `postgres`: the workers share a PostgreSQL database of their own instead of one SQLite folder.
    private func cluster(workers: Int, devices deviceCount: Int, suffix: String, postgres: Bool = false,
                         settings more: [String: String] = [:]) async throws -> Cluster {
        var settings = [
            "WABRIDGE_WORKER_ID": "w1", "WABRIDGE_LEASE_SECONDS": "5",
            "WABRIDGE_SEND_RATE": "1000", "WABRIDGE_SEND_BURST": "1000",
        ].merging(more) { $1 }
        if postgres {
            let db = try TestDatabase.create(prefix: "mw")
            database = db
            settings["WABRIDGE_DATABASE_URL"] = db.url
        }
        let w = try await E2EWorld(settings: settings)
        world = w
        var ports = ["w1": w.adminPort]
        var processes = ["w1": w.worker]
        for i in 2...max(2, workers) where i <= workers {
            let (p, port) = try await w.startWorker(id: "w\(i)")
            extra.append(p)
            ports["w\(i)"] = port
            processes["w\(i)"] = p
        }
        var devices: [String: JID] = [:]
        let names = ports.keys.sorted()
        for i in 0..<deviceCount {
            let id = "d\(i)"
            let port = ports[names[i % names.count]]!
            devices[id] = try await w.linkDevice(id, phone: "15557\(suffix)\(String(format: "%03d", i))", port: port)
        }
        let peer = "15557\(suffix)999"
        await w.sim.createPhone(number: peer)
        return Cluster(world: w, ports: ports, processes: processes, devices: devices, peer: peer)
    }

    /// Device id → (state, worker) as any live worker's admin HTTP reports it.
    private func placement(_ c: Cluster, via worker: String) async throws -> [String: (state: String, worker: String?)] {
        var out: [String: (String, String?)] = [:]
        for d in try await c.world.deviceList(port: c.ports[worker]) {
            guard let id = d["id"] as? String else { continue }
            out[id] = (d["state"] as? String ?? "?", d["worker"] as? String)
        }
        return out
    }

    /// Waits until every device is connected and run by one of `workers`; returns the placement.
    @discardableResult
    private func waitPlaced(_ c: Cluster, on workers: Set<String>, via: String, timeout: TimeInterval,
                            balanced: Bool = false) async throws -> [String: (state: String, worker: String?)] {
        let end = Date().addingTimeInterval(timeout)
        var last: [String: (state: String, worker: String?)] = [:]
        while Date() < end {
            last = (try? await placement(c, via: via)) ?? [:]
            let ok = last.count == c.devices.count && last.values.allSatisfy { $0.state == "connected" && $0.worker.map(workers.contains) == true }
            if ok && (!balanced || isBalanced(last, workers: workers)) { return last }
            try await Task.sleep(for: .milliseconds(200))
        }
        let summary = last.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.state)@\($0.value.worker ?? "-")" }
        throw WorkerProcess.Failure(description: "devices not placed on \(workers.sorted()): \(summary)")
    }

    private func isBalanced(_ p: [String: (state: String, worker: String?)], workers: Set<String>) -> Bool {
        let share = (p.count + workers.count - 1) / workers.count
        let counts = Dictionary(grouping: p.values.compactMap(\.worker), by: { $0 }).mapValues(\.count)
        return workers.allSatisfy { counts[$0, default: 0] >= share - 1 && counts[$0, default: 0] <= share }
    }

    private func commands(_ c: Cluster, perDevice: Int, tag: String) -> [AMQPOutgoingMessage] {
        var out: [AMQPOutgoingMessage] = []
        for n in 0..<perDevice {
            for id in c.devices.keys.sorted() {
                let body = try! JSONSerialization.data(withJSONObject: [
                    "id": "\(tag)-\(id)-\(n)", "kind": "send.text", "to": "+\(c.peer)", "text": "\(id) \(n)",
                ])
                out.append(AMQPOutgoingMessage(exchange: c.world.commandsExchange, routingKey: id, body: Array(body),
                                               properties: AMQPProperties(contentType: "application/json", deliveryMode: .persistent)))
            }
        }
        return out
    }

    /// Every expected text on the peer phone exactly once, each device's in order.
    private func assertDeliveredOnce(_ c: Cluster, perDevice: Int, timeout: TimeInterval) async throws {
        let total = perDevice * c.devices.count
        let end = Date().addingTimeInterval(timeout)
        var got: [SimReceivedMessage] = []
        while Date() < end {
            got = await c.world.sim.receivedMessages(phone: c.peer)
            if got.count >= total { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        let texts = got.compactMap(\.text)
        XCTAssertEqual(texts.count, total, "messages on the phone")
        XCTAssertEqual(Set(texts).count, texts.count, "a command was shown twice")
        for id in c.devices.keys {
            let mine = texts.filter { $0.hasPrefix("\(id) ") }
            XCTAssertEqual(mine, (0..<perDevice).map { "\(id) \($0)" }, "order of \(id)")
        }
    }

    private func replacedSessions(_ c: Cluster) async -> Int {
        var n = 0
        for jid in c.devices.values { n += await c.world.sim.replacedSessionCount(jid) }
        return n
    }

    /// Logins each device made on the simulator so far.
    private func logins(_ c: Cluster) async -> [String: Int] {
        var out: [String: Int] = [:]
        for (id, jid) in c.devices { out[id] = await c.world.sim.loginCount(jid) }
        return out
    }

    /// Each device logged in once more if it moved, not at all otherwise: a take-over is one
    /// login, never a fight (`replaced` ping-pong would add logins on both sides).
    private func assertOneLoginPerMove(_ c: Cluster, before: [String: Int], moved: Set<String>,
                                       file: StaticString = #filePath, line: UInt = #line) async {
        let now = await logins(c)
        for id in c.devices.keys.sorted() {
            XCTAssertEqual(now[id], before[id]! + (moved.contains(id) ? 1 : 0), "logins of \(id)", file: file, line: line)
        }
    }

    // MARK: Tests

    /// Three workers, thirty devices: each device is connected once, the devices are spread, and
    /// when one worker is killed with -9 in the middle of 1,000 commands its devices come back on
    /// the other two, every command reaches the phone exactly once, in each device's order.
    func testThreeWorkersShareThirtyDevicesAndTakeOverAKilledOne() async throws {
        try await threeWorkersAndAKilledOne(postgres: false, suffix: "31")
    }

    /// The same on a PostgreSQL store: leases on the database's clock, fencing in its transactions.
    func testOnPostgreSQLThreeWorkersShareThirtyDevicesAndTakeOverAKilledOne() async throws {
        let moved = try await threeWorkersAndAKilledOne(postgres: true, suffix: "34")
        let db = try XCTUnwrap(database)
        let owners = try db.query("SELECT DISTINCT owner FROM lease WHERE expires_at > extract(epoch FROM now()) ORDER BY owner")
        XCTAssertEqual(owners, ["w1", "w3"], "the live leases are in PostgreSQL, held by the survivors")
        // Each device taken from the killed worker got a new generation, and its fence went up to it.
        let raised = try db.query("SELECT count(*) FROM device_fence WHERE fence >= 2")
        XCTAssertGreaterThanOrEqual(Int(raised.first ?? "") ?? 0, moved)
    }

    /// Returns how many devices moved off the killed worker.
    @discardableResult
    private func threeWorkersAndAKilledOne(postgres: Bool, suffix: String) async throws -> Int {
        var c = try await cluster(workers: 3, devices: 30, suffix: suffix, postgres: postgres)
        let placed = try await waitPlaced(c, on: ["w1", "w2", "w3"], via: "w1", timeout: 60, balanced: true)
        let counts = Dictionary(grouping: placed.values.compactMap(\.worker), by: { $0 }).mapValues(\.count)
        print("placement of 30 devices on 3 workers: \(counts.sorted { $0.key < $1.key })")
        let replacedAtStart = await replacedSessions(c)
        XCTAssertEqual(replacedAtStart, 0, "two workers were logged in as one device")
        let loginsBefore = await logins(c)
        XCTAssertEqual(Set(loginsBefore.values), [1], "every device connected exactly once")
        let onKilled = Set(placed.filter { $0.value.worker == "w2" }.map(\.key))

        let perDevice = 34  // 1,020 commands
        let failures = await c.world.amqp.publish(contentsOf: commands(c, perDevice: perDevice, tag: "k")).compactMap { $0 }
        XCTAssertTrue(failures.isEmpty, "\(failures.prefix(3))")
        let end = Date().addingTimeInterval(120)
        while await c.world.sim.receivedMessages(phone: c.peer).count < 250, Date() < end {
            try await Task.sleep(for: .milliseconds(50))
        }
        let killedAt = Date()
        c.processes["w2"]!.crash()
        c.ports["w2"] = nil
        try await waitPlaced(c, on: ["w1", "w3"], via: "w3", timeout: 90)
        let takeover = Date().timeIntervalSince(killedAt)
        print("kill -9 of w2: every device connected on w1/w3 after \(String(format: "%.1f", takeover)) s (lease 5 s)")
        try await assertDeliveredOnce(c, perDevice: perDevice, timeout: 300)
        await assertOneLoginPerMove(c, before: loginsBefore, moved: onKilled)
        // The simulator may not have read the end of a killed worker's busy socket before the
        // new owner logs in; it then "replaces" a session that is already dead.
        let replaced = await replacedSessions(c)
        print("sessions of the killed worker replaced by the new owner before the simulator saw them close: \(replaced)")
        XCTAssertLessThanOrEqual(replaced, onKilled.count)
        return onKilled.count
    }

    /// A worker frozen (SIGSTOP) past its leases loses its devices to the other; resumed
    /// (SIGCONT), it logs in as none of them and sends nothing for them: no session is replaced
    /// after the take-over, and the devices keep working on the new owner.
    func testAFrozenWorkerResumedNeverSpeaksForTheDevicesItLost() async throws {
        try await frozenWorker(postgres: false, suffix: "32")
    }

    /// The same on a PostgreSQL store, where the database refuses the stale generation's key writes.
    func testOnPostgreSQLAFrozenWorkerResumedNeverSpeaksForTheDevicesItLost() async throws {
        try await frozenWorker(postgres: true, suffix: "35")
    }

    private func frozenWorker(postgres: Bool, suffix: String) async throws {
        let c = try await cluster(workers: 2, devices: 6, suffix: suffix, postgres: postgres)
        let before = try await waitPlaced(c, on: ["w1", "w2"], via: "w1", timeout: 60, balanced: true)
        let frozen = Set(before.filter { $0.value.worker == "w2" }.map(\.key))
        XCTAssertFalse(frozen.isEmpty)
        let w2 = c.processes["w2"]!
        let loginsBefore = await logins(c)
        w2.send(signal: SIGSTOP)
        try await waitPlaced(c, on: ["w1"], via: "w1", timeout: 60)
        // The frozen worker's sockets are still open: the new owner's login replaced each once.
        var replacedAtTakeover: [String: Int] = [:]
        for (id, jid) in c.devices { replacedAtTakeover[id] = await c.world.sim.replacedSessionCount(jid) }
        for id in frozen { XCTAssertLessThanOrEqual(replacedAtTakeover[id]!, 1, id) }
        await assertOneLoginPerMove(c, before: loginsBefore, moved: frozen)
        let loginsAtTakeover = await logins(c)

        w2.send(signal: SIGCONT)
        // Several of its rounds: it finds its leases gone, then takes a share back by hand-over.
        try await Task.sleep(for: .seconds(8))
        XCTAssertTrue(w2.output.value.contains("lease lost"), "the resumed worker did not notice: \(w2.output.value.suffix(2000))")
        // Back to a share of its own only by hand-over: whatever moved to it logged in once.
        let after = try await placement(c, via: "w1")
        await assertOneLoginPerMove(c, before: loginsAtTakeover, moved: Set(after.filter { $0.value.worker == "w2" }.map(\.key)))
        for (id, jid) in c.devices {
            let now = await c.world.sim.replacedSessionCount(jid)
            XCTAssertEqual(now, replacedAtTakeover[id], "\(id): a session was replaced after the take-over (ping-pong)")
        }
        try await waitPlaced(c, on: ["w1", "w2"], via: "w2", timeout: 60, balanced: true)
        // Keys and sessions are intact wherever the devices run now.
        let failures = await c.world.amqp.publish(contentsOf: commands(c, perDevice: 5, tag: "f")).compactMap { $0 }
        XCTAssertTrue(failures.isEmpty)
        try await assertDeliveredOnce(c, perDevice: 5, timeout: 120)
    }

    /// SIGTERM of a worker hands its devices over while commands flow: it exits 0, the other
    /// runs every device, no command is dead-lettered, each reaches the phone once and in order.
    func testSIGTERMHandsTheDevicesOverWithNoCommandFailed() async throws {
        let c = try await cluster(workers: 2, devices: 6, suffix: "33")
        let placed = try await waitPlaced(c, on: ["w1", "w2"], via: "w1", timeout: 60, balanced: true)
        let loginsBefore = await logins(c)
        let dead = try await c.world.collect(c.world.deadQueue)
        let perDevice = 50
        let failures = await c.world.amqp.publish(contentsOf: commands(c, perDevice: perDevice, tag: "t")).compactMap { $0 }
        XCTAssertTrue(failures.isEmpty)
        let end = Date().addingTimeInterval(60)
        while await c.world.sim.receivedMessages(phone: c.peer).count < 40, Date() < end {
            try await Task.sleep(for: .milliseconds(20))
        }
        let status = c.processes["w2"]!.stop(timeout: 30)
        XCTAssertEqual(status, 0, "SIGTERM: \(c.processes["w2"]!.output.value.suffix(2000))")
        try await waitPlaced(c, on: ["w1"], via: "w1", timeout: 30)
        try await assertDeliveredOnce(c, perDevice: perDevice, timeout: 120)
        let deadLettered = await dead.messages
        XCTAssertEqual(deadLettered.count, 0, "dead-lettered: \(deadLettered.prefix(3).map { String(decoding: $0.body, as: UTF8.self) })")
        await assertOneLoginPerMove(c, before: loginsBefore, moved: Set(placed.filter { $0.value.worker == "w2" }.map(\.key)))
        let replaced = await replacedSessions(c)
        print("SIGTERM hand-over: sessions replaced before the simulator saw them close: \(replaced)")
    }

    /// Admin requests for a device another worker runs are carried out by that worker (its
    /// control queue) and answered by the one asked as if local: QR login and its image, the
    /// owner's own errors, reconnect, logout, pairing code, delete. An owner that is frozen
    /// or gone answers `503 OWNER_UNREACHABLE` within the control timeout.
    func testAdminRequestsForADeviceRunElsewhereGoToItsOwner() async throws {
        // Leases long enough that nothing moves while the owner is frozen or just killed.
        let c = try await cluster(workers: 2, devices: 0, suffix: "36",
                                  settings: ["WABRIDGE_LEASE_SECONDS": "20", "WABRIDGE_CONTROL_TIMEOUT": "2"])
        let w = c.world
        let (w1, w2) = (c.ports["w1"]!, c.ports["w2"]!)
        try await w.createDevice("x", port: w1)  // created on w1: w1 holds its lease
        // w2 learns of it at its next ownership round (a third of the lease time).
        var (status, body) = try await w.http("GET", "/devices/x", port: w2)
        let known = Date().addingTimeInterval(15)
        while status == 404, Date() < known {
            try await Task.sleep(for: .milliseconds(200))
            (status, body) = try await w.http("GET", "/devices/x", port: w2)
        }
        XCTAssertEqual(body["worker"] as? String, "w1")

        // QR login asked of w2, run by w1.
        (status, body) = try await w.http("POST", "/devices/x/login/qr", port: w2)
        XCTAssertEqual(status, 200, "\(body)")
        let qr = try XCTUnwrap(body["qr"] as? String)
        (status, _) = try await w.http("GET", "/devices/x/login/qr.png", port: w2)
        XCTAssertEqual(status, 200, "the QR image of a login running on w1, through w2")
        await w.sim.createPhone(number: "15557360001")
        _ = try await w.sim.scanQR(phone: "15557360001", qr: qr)
        try await w.waitState("x", "connected")
        (status, body) = try await w.http("GET", "/devices/x", port: w2)
        XCTAssertEqual(body["worker"] as? String, "w1", "the device stayed on its owner")
        XCTAssertTrue(c.processes["w1"]!.output.value.contains("control request"), "w1 never heard from w2")

        // The owner's own refusal comes back with its code.
        (status, body) = try await w.http("POST", "/devices/x/login/qr", port: w2)
        XCTAssertEqual(status, 409)
        XCTAssertEqual((body["error"] as? [String: Any])?["code"] as? String, "ALREADY_LOGGED_IN")

        (status, body) = try await w.http("POST", "/devices/x/reconnect", port: w2)
        XCTAssertEqual(status, 202, "\(body)")
        try await w.waitState("x", "connected")
        (status, body) = try await w.http("POST", "/devices/x/logout", port: w2)
        XCTAssertEqual(status, 200, "\(body)")
        XCTAssertEqual(body["state"] as? String, "logged_out")
        (status, body) = try await w.http("POST", "/devices/x/reconnect", port: w2)
        XCTAssertEqual(status, 409)
        XCTAssertEqual((body["error"] as? [String: Any])?["code"] as? String, "NOT_LOGGED_IN")
        await w.sim.createPhone(number: "15557360002")
        (status, body) = try await w.http("POST", "/devices/x/login/pair-code", body: ["phone": "+15557360002"], port: w2)
        XCTAssertEqual(status, 200, "\(body)")
        XCTAssertEqual((body["code"] as? String)?.filter { $0.isLetter || $0.isNumber }.count, 8, "\(body)")
        (status, body) = try await w.http("DELETE", "/devices/x", port: w2)
        XCTAssertEqual(status, 204, "\(body)")
        let left = try await w.deviceList(port: w1).compactMap { $0["id"] as? String }
        XCTAssertFalse(left.contains("x"), "deleted through w2, still on w1: \(left)")

        // A frozen owner: no answer, 503 after the control timeout (2 s), lease still live.
        try await w.linkDevice("y", phone: "15557360003", port: w2)
        let owner = c.processes["w2"]!
        owner.send(signal: SIGSTOP)
        var started = Date()
        (status, body) = try await w.http("POST", "/devices/y/logout", port: w1)
        var waited = Date().timeIntervalSince(started)
        XCTAssertEqual(status, 503, "\(body)")
        XCTAssertEqual((body["error"] as? [String: Any])?["code"] as? String, "OWNER_UNREACHABLE")
        XCTAssertGreaterThanOrEqual(waited, 1.9, "answered before the control timeout")
        // A dead owner: its control queue is gone with its connection, the broker returns the request.
        owner.crash()
        let end = Date().addingTimeInterval(10)
        repeat {
            started = Date()
            (status, body) = try await w.http("POST", "/devices/y/logout", port: w1)
            waited = Date().timeIntervalSince(started)
            if ((body["error"] as? [String: Any])?["message"] as? String)?.contains("not connected to the broker") == true { break }
            try await Task.sleep(for: .milliseconds(100))
        } while Date() < end
        XCTAssertEqual(status, 503, "\(body)")
        XCTAssertEqual((body["error"] as? [String: Any])?["code"] as? String, "OWNER_UNREACHABLE")
        XCTAssertTrue(((body["error"] as? [String: Any])?["message"] as? String)?.contains("not connected to the broker") == true, "\(body)")
        XCTAssertLessThan(waited, 1.9, "a returned request did not wait for the timeout")
        // Once the lease ran out, w1 runs the device and does it itself.
        let moved = Date().addingTimeInterval(60)
        repeat {
            (status, body) = try await w.http("GET", "/devices/y", port: w1)
            if body["worker"] as? String == "w1", body["state"] as? String == "connected" { break }
            try await Task.sleep(for: .milliseconds(200))
        } while Date() < moved
        XCTAssertEqual(body["worker"] as? String, "w1", "\(body)")
        (status, body) = try await w.http("POST", "/devices/y/logout", port: w1)
        XCTAssertEqual(status, 200, "\(body)")
        XCTAssertEqual(body["state"] as? String, "logged_out")
    }
}
