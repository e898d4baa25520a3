import AMQP
import BridgeStore
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import WABinary
import WAClient
import WACrypto
import WAProto
import WASignal
import WATestSupport
#if canImport(Glibc)
import Glibc
#endif

// density-bench: how many idle linked devices one `wabridge serve` holds, as a report (not a
// timed test). Three processes besides the broker (and PostgreSQL):
//   - `wabridge-sim` with N companion devices registered through its control API
//     (`POST /devices`: keys derived from a seed, as if linked earlier, prekeys on the server);
//   - a worker on an empty store first (the baseline of the same run), then
//   - one `wabridge serve` on a store seeded with the same N linked devices (SQLite files under a
//     data folder, or one PostgreSQL database), as after a restart with N accounts.
// Reported: time from the worker's start to all N logged in (the simulator's live connections,
// then the admin API's states), worker RSS per idle device over the baseline, worker CPU while
// idle (keepalives, lease renewals), and that every device's command queue has a consumer.
//
// usage: density-bench AMQP_URL [--devices N] [--store sqlite|postgres] [--hold SECONDS] [--data DIR]
// The seeded store is kept (under --data, default .build/density-<store>-<N>) and reused by the
// next run with the same N; PostgreSQL uses the database `density_<N>` on WABRIDGE_TEST_DATABASE_URL.

struct BenchError: Error, CustomStringConvertible { let description: String }

struct Options {
    var brokerURL = ""
    var devices = 10_000
    var store = "sqlite"
    var hold = 60.0
    var data: String?

    init(_ arguments: [String]) throws {
        var iterator = arguments.dropFirst().makeIterator()
        while let argument = iterator.next() {
            switch argument {
            case "--devices": devices = Int(iterator.next() ?? "") ?? devices
            case "--store": store = iterator.next() ?? store
            case "--hold": hold = Double(iterator.next() ?? "") ?? hold
            case "--data": data = iterator.next()
            default:
                guard brokerURL.isEmpty, !argument.hasPrefix("--") else { throw BenchError(description: "unknown argument \(argument)") }
                brokerURL = argument
            }
        }
        guard !brokerURL.isEmpty, ["sqlite", "postgres"].contains(store), devices > 0 else {
            throw BenchError(description: "usage: density-bench AMQP_URL [--devices N] [--store sqlite|postgres] [--hold SECONDS] [--data DIR]")
        }
    }
}

let seed = "density"
let devicesPerPhone = 100
let preKeysPerDevice = 10
let binDir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()

// MARK: Keys both sides derive

/// Key i of the run: SHA-256(seed ‖ label ‖ i) as a Curve25519 private key.
func derivedKey(_ label: String, _ index: Int) -> Curve25519KeyPair {
    let raw = Symmetric.sha256(Data("\(seed)/\(label)/\(index)".utf8))
    return Curve25519KeyPair(privateKey: try! Curve25519PrivateKey(rawRepresentation: raw))  // 32 bytes: cannot throw
}

func phoneNumber(_ index: Int) -> String { "1998" + String(format: "%07d", index / devicesPerPhone) }
func deviceName(_ index: Int) -> String { String(format: "density-%05d", index) }

struct DeviceKeys: Sendable {
    let index: Int
    let record: DeviceRecord
    let preKeys: [PreKeyRecord]

    init(_ index: Int) throws {
        self.index = index
        let identity = derivedKey("identity", index)
        record = DeviceRecord(
            noiseKey: derivedKey("noise", index), identityKey: identity, registrationID: UInt32(index % 16_000 + 1),
            signedPreKey: try SignedPreKey.generate(id: 1, signedBy: identity), advSecret: Data(count: 32),
            account: WAAdv_ADVSignedDeviceIdentity(), pushName: "Density \(index)", platform: "android")
        preKeys = (0..<preKeysPerDevice).map { PreKeyRecord(id: UInt32($0 + 1), keyPair: derivedKey("prekey\($0)", index)) }
    }

    /// The simulator's side: public halves only.
    var provisioning: [String: Any] {
        [
            "phone": phoneNumber(index),
            "noiseKey": record.noiseKey.publicKey.rawRepresentation.base64EncodedString(),
            "identityKey": record.identityKey.publicKey.rawRepresentation.base64EncodedString(),
            "registrationId": record.registrationID,
            "signedPreKey": [
                "id": record.signedPreKey.id,
                "key": record.signedPreKey.keyPair.publicKey.rawRepresentation.base64EncodedString(),
                "signature": record.signedPreKey.signature.base64EncodedString(),
            ] as [String: Any],
            "preKeys": preKeys.map { ["id": $0.id, "key": $0.keyPair.publicKey.rawRepresentation.base64EncodedString()] as [String: Any] },
        ]
    }
}

// MARK: /proc

func statusKB(_ pid: Int32, _ field: String) -> Int { ProcessStats.status(pid, field) }

func cpuSeconds(_ pid: Int32) -> Double { ProcessStats.cpuSeconds(pid) }

func threadCount(_ pid: Int32) -> Int { statusKB(pid, "Threads") }

func openFiles(_ pid: Int32) -> Int { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1 }

func loadAverage() -> String {
    (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?"
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

// MARK: HTTP

func http(_ url: String, method: String = "GET", token: String? = nil, json: Any? = nil,
          timeout: TimeInterval = 60) async throws -> (Int, Any?) {
    var request = URLRequest(url: URL(string: url)!, timeoutInterval: timeout)
    request.httpMethod = method
    if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
    if let json {
        request.httpBody = try JSONSerialization.data(withJSONObject: json)
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
    }
    let (data, response) = try await URLSession.shared.data(for: request)
    return ((response as? HTTPURLResponse)?.statusCode ?? 0, try? JSONSerialization.jsonObject(with: data))
}

// MARK: Processes

/// `wabridge-sim` on free loopback ports; its stdout says when it listens.
func startSimulator() async throws -> (WorkerProcess, control: String, endpoint: String, root: String) {
    let port = try WorkerProcess.freeLoopbackPort(), controlPort = try WorkerProcess.freeLoopbackPort()
    let rootHex = derivedKey("root", 0).privateKey.rawRepresentation.map { String(format: "%02x", $0) }.joined()
    let sim = try WorkerProcess(binary: binDir.appendingPathComponent("wabridge-sim"),
                                arguments: ["--port", String(port), "--control-port", String(controlPort), "--root-key", rootHex],
                                environment: [:])
    let control = "http://127.0.0.1:\(controlPort)"
    for _ in 0..<200 {
        if let (status, info) = try? await http(control + "/info"), status == 200, let info = info as? [String: Any],
           let endpoint = info["endpoint"] as? String, let root = info["rootPublicKey"] as? String {
            return (sim, control, endpoint, root)
        }
        guard sim.isRunning else { break }
        try await Task.sleep(for: .milliseconds(100))
    }
    throw BenchError(description: "wabridge-sim did not start:\n\(sim.output.value.suffix(2000))")
}

func simStats(_ control: String) async -> (connections: Int, devices: Int) {
    guard let (_, body) = try? await http(control + "/stats"), let o = body as? [String: Any] else { return (-1, -1) }
    return (o["connections"] as? Int ?? -1, o["devices"] as? Int ?? -1)
}

func waitReady(_ worker: WorkerProcess, adminPort: Int, token: String, timeout: Duration) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        if let (status, _) = try? await http("http://127.0.0.1:\(adminPort)/readyz", token: token, timeout: 5), status == 200 { return }
        guard worker.isRunning else { break }
        try await Task.sleep(for: .milliseconds(100))
    }
    throw BenchError(description: "the worker never became ready:\n\(worker.output.value.suffix(3000))")
}

// MARK: Seeding

/// The worker's store with N linked devices (registry rows, keys, prekeys), made once and reused.
func seedStore(_ options: Options, dataDir: URL, databaseURL: String?, keys: [DeviceKeys]) async throws -> Double {
    let marker = dataDir.appendingPathComponent("density-seeded-\(options.devices)")
    if FileManager.default.fileExists(atPath: marker.path) { return 0 }
    try? FileManager.default.removeItem(at: dataDir)
    try FileManager.default.createDirectory(at: dataDir, withIntermediateDirectories: true)
    let configuration = BridgeStore.Configuration(dataDirectory: dataDir)
    let store: BridgeStore
    if let databaseURL { store = try await BridgeStore.postgres(url: databaseURL, configuration: configuration) } else {
        store = try BridgeStore(configuration: configuration)
    }
    let clock = ContinuousClock()
    let t0 = clock.now
    try await withThrowingTaskGroup(of: Void.self) { group in
        var next = 0
        func add() {
            let k = keys[next]
            next += 1
            group.addTask {
                let id = try DeviceID(deviceName(k.index))
                _ = try await store.createDevice(id: id)
                let storage = try await store.device(id)
                var record = k.record
                record.jid = JID(user: phoneNumber(k.index), device: UInt16(k.index % devicesPerPhone + 1), server: JID.userServer)
                try await storage.keys.saveDevice(record)
                try await storage.keys.storePreKeys(k.preKeys)
                _ = try await storage.keys.allocatePreKeyIDs(preKeysPerDevice)  // the counter past the stored ids
                _ = try await store.registry.setIdentity(id, jid: record.jid?.description, lid: nil, pushName: record.pushName)
                _ = try await store.registry.updateState(id, to: .disconnected)
            }
        }
        while next < min(8, keys.count) { add() }
        var done = 0
        while try await group.next() != nil {
            done += 1
            if done % 1000 == 0 { print("  seeded \(done)") }
            if next < keys.count { add() }
        }
    }
    let seconds = (clock.now - t0).seconds
    store.closeAll()
    await store.shutdown()
    FileManager.default.createFile(atPath: marker.path, contents: Data())
    return seconds
}

/// A PostgreSQL database of the bench's own (kept between runs), made with `psql`.
func benchDatabase(_ devices: Int, fresh: Bool) throws -> String {
    guard let admin = ProcessInfo.processInfo.environment["WABRIDGE_TEST_DATABASE_URL"], !admin.isEmpty,
          var components = URLComponents(string: admin) else {
        throw BenchError(description: "WABRIDGE_TEST_DATABASE_URL is not set: eval \"$(scripts/test-postgres.sh start)\"")
    }
    let name = "density_\(devices)"
    components.path = "/\(name)"
    func psql(_ sql: String) throws -> String { try PostgresShell.run(admin, sql).joined(separator: "\n") }
    if fresh { _ = try psql("DROP DATABASE IF EXISTS \(name) WITH (FORCE)") }
    if try psql("SELECT 1 FROM pg_database WHERE datname = '\(name)'") != "1" { _ = try psql("CREATE DATABASE \(name)") }
    return components.string!
}

// MARK: Run

func run(_ options: Options) async throws {
    let n = options.devices
    let dataDir = URL(fileURLWithPath: options.data ?? ".build/density-\(options.store)-\(n)").standardizedFileURL
    print("density-bench: \(n) devices, \(options.store) store, hold \(Int(options.hold)) s; load average before: \(loadAverage())")
    let clock = ContinuousClock()

    let tKeys = clock.now
    let keys = try await withThrowingTaskGroup(of: [DeviceKeys].self) { group in
        let chunk = 500
        for start in stride(from: 0, to: n, by: chunk) {
            group.addTask { try (start..<min(n, start + chunk)).map(DeviceKeys.init) }
        }
        var all: [DeviceKeys] = []
        for try await part in group { all += part }
        return all.sorted { $0.index < $1.index }
    }
    print(String(format: "keys derived for %d devices in %.1f s", n, (clock.now - tKeys).seconds))

    let (sim, control, endpoint, root) = try await startSimulator()
    defer { _ = sim.stop() }
    let tProvision = clock.now
    for start in stride(from: 0, to: n, by: 2_000) {
        let batch = keys[start..<min(n, start + 2_000)].map(\.provisioning)
        let (status, body) = try await http(control + "/devices", method: "POST", json: ["devices": batch], timeout: 300)
        guard status == 200, let jids = (body as? [String: Any])?["jids"] as? [String], jids.count == batch.count else {
            throw BenchError(description: "provisioning failed: \(status) \(String(describing: body))")
        }
        // The seeded store names each device by the JID the simulator gives it.
        let expected = JID(user: phoneNumber(start), device: UInt16(start % devicesPerPhone + 1), server: JID.userServer).description
        guard jids.first == expected else { throw BenchError(description: "simulator named \(jids.first ?? "?"), expected \(expected)") }
    }
    print(String(format: "simulator: %d devices registered in %.1f s; its RSS %d kB", n, (clock.now - tProvision).seconds, statusKB(sim.pid, "VmRSS")))

    let databaseURL = options.store == "postgres" ? try benchDatabase(n, fresh: !FileManager.default.fileExists(
        atPath: dataDir.appendingPathComponent("density-seeded-\(n)").path)) : nil
    let seedSeconds = try await seedStore(options, dataDir: dataDir, databaseURL: databaseURL, keys: keys)
    print(seedSeconds > 0 ? String(format: "store seeded with %d linked devices in %.1f s", n, seedSeconds)
                          : "store already seeded (\(dataDir.path))")

    let token = "density"
    let prefix = "density\(UUID().uuidString.prefix(6).lowercased())"
    func workerEnvironment(dataDir: String, adminPort: Int, database: String?) -> [String: String] {
        var env = [
            "WABRIDGE_AMQP_URL": options.brokerURL, "WABRIDGE_TOPOLOGY_PREFIX": prefix, "WABRIDGE_DATA_DIR": dataDir,
            "WABRIDGE_WA_URL": endpoint, "WABRIDGE_WA_ROOT_KEY": root, "WABRIDGE_ADMIN_PORT": String(adminPort),
            "WABRIDGE_ADMIN_TOKEN": token,
            "WABRIDGE_LOG_LEVEL": ProcessInfo.processInfo.environment["DENSITY_LOG_LEVEL"] ?? "warning",
        ]
        if let database { env["WABRIDGE_DATABASE_URL"] = database }
        return env
    }

    // Baseline: the same worker on an empty store of the same kind, same broker, same simulator.
    let emptyDir = FileManager.default.temporaryDirectory.appendingPathComponent("density-empty-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: emptyDir) }
    let emptyDatabase = options.store == "postgres" ? try benchDatabase(0, fresh: true) : nil
    let basePort = try WorkerProcess.freeLoopbackPort()
    let base = try WorkerProcess(binary: binDir.appendingPathComponent("wabridge"),
                                 environment: workerEnvironment(dataDir: emptyDir.path, adminPort: basePort, database: emptyDatabase))
    try await waitReady(base, adminPort: basePort, token: token, timeout: .seconds(60))
    try await Task.sleep(for: .seconds(5))
    let baseRSS = statusKB(base.pid, "VmRSS")
    let baseCPU0 = cpuSeconds(base.pid)
    try await Task.sleep(for: .seconds(10))
    let baseIdleCPU = (cpuSeconds(base.pid) - baseCPU0) / 10
    _ = base.stop()
    print(String(format: "baseline worker (no devices): RSS %d kB, idle CPU %.2f %%", baseRSS, baseIdleCPU * 100))

    // The worker with N devices.
    let adminPort = try WorkerProcess.freeLoopbackPort()
    let t0 = clock.now
    let worker = try WorkerProcess(binary: binDir.appendingPathComponent("wabridge"),
                                   environment: workerEnvironment(dataDir: dataDir.path, adminPort: adminPort, database: databaseURL))
    defer {
        _ = worker.stop(timeout: 120)
        // DENSITY_LOG_LEVEL=info: the worker's last lines, to see what it did.
        if ProcessInfo.processInfo.environment["DENSITY_LOG_LEVEL"] != nil { print(worker.output.value.suffix(8000)) }
    }
    try await waitReady(worker, adminPort: adminPort, token: token, timeout: .seconds(300))
    let readySeconds = (clock.now - t0).seconds
    var allConnected: Double?
    var samples: [(Double, Int)] = []
    while (clock.now - t0) < .seconds(600), worker.isRunning {
        let (connections, _) = await simStats(control)
        let at = (clock.now - t0).seconds
        if samples.last?.1 != connections { samples.append((at, connections)) }
        if Int(at) / 10 != Int(at - 0.25) / 10 {
            print(String(format: "  %.0f s: %d logged in, worker CPU %.1f s, RSS %d kB", at, connections, cpuSeconds(worker.pid),
                         statusKB(worker.pid, "VmRSS")))
            if Int(at) == 40, ProcessInfo.processInfo.environment["DENSITY_LOG_LEVEL"] != nil {
                print(worker.output.value.suffix(20000))
            }
        }
        if connections >= n { allConnected = at; break }
        try await Task.sleep(for: .milliseconds(250))
    }
    guard let allConnected else {
        throw BenchError(description: "only \(samples.last?.1 ?? 0) of \(n) devices logged in within 600 s:\n\(worker.output.value.suffix(3000))")
    }
    let cpuToConnect = cpuSeconds(worker.pid)
    let curve = samples.filter { _ in true }.enumerated().filter { $0.offset % max(1, samples.count / 12) == 0 }
        .map { String(format: "%.0f s: %d", $0.element.0, $0.element.1) }.joined(separator: ", ")
    print(String(format: "worker ready (admin /readyz) after %.1f s; all %d logged in (simulator's live connections) after %.1f s; worker CPU so far %.1f s",
                 readySeconds, n, allConnected, cpuToConnect))
    print("  logins over time: \(curve)")

    // The admin API's view: every device connected.
    var adminConnected = 0
    var adminSeconds = 0.0
    while (clock.now - t0) < .seconds(600) {
        if let (status, body) = try? await http("http://127.0.0.1:\(adminPort)/devices", token: token, timeout: 60), status == 200 {
            let list = ((body as? [String: Any])?["devices"] as? [[String: Any]]) ?? (body as? [[String: Any]]) ?? []
            adminConnected = list.filter { $0["state"] as? String == "connected" }.count
            if adminConnected >= n { adminSeconds = (clock.now - t0).seconds; break }
        }
        try await Task.sleep(for: .seconds(1))
    }
    print(String(format: "admin API: %d of %d devices connected after %.1f s", adminConnected, n, adminSeconds))

    // Idle: keepalives and, with PostgreSQL, lease renewals.
    let cpu0 = cpuSeconds(worker.pid)
    let idleStart = clock.now
    try await Task.sleep(for: .seconds(options.hold))
    let idleCPU = (cpuSeconds(worker.pid) - cpu0) / (clock.now - idleStart).seconds
    let rss = statusKB(worker.pid, "VmRSS"), peak = statusKB(worker.pid, "VmHWM")
    let (stillConnected, _) = await simStats(control)
    print(String(format: "after %.0f s idle: %d of %d still logged in; worker RSS %d kB (peak %d kB), %d threads, %d open files",
                 options.hold, stillConnected, n, rss, peak, threadCount(worker.pid), openFiles(worker.pid)))
    print(String(format: "  RSS per idle device: %.1f KiB over the baseline (%.1f KiB all included)",
                 Double(rss - baseRSS) / Double(n), Double(rss) / Double(n)))
    print(String(format: "  worker CPU at idle: %.1f %% of one core (baseline %.2f %%): %.1f µs per device per second",
                 idleCPU * 100, baseIdleCPU * 100, (idleCPU - baseIdleCPU) / Double(n) * 1e6))
    print("  simulator RSS \(statusKB(sim.pid, "VmRSS")) kB, CPU \(String(format: "%.1f", cpuSeconds(sim.pid))) s in all")

    // Every device's command queue has its consumer (the owner's).
    let amqp = try await AMQPConnection.connect(try AMQPConfiguration(url: options.brokerURL, connectionName: "density-bench"))
    var consumed = 0, missing: [String] = []
    for k in keys {
        let queue = "\(prefix).device.\(deviceName(k.index)).commands"
        do {
            let result = try await amqp.declareQueue(AMQPQueueDeclaration(name: queue, durable: true), passive: true)
            if result.consumerCount >= 1 { consumed += 1 } else { missing.append(queue) }
        } catch { missing.append(queue) }
    }
    print("command queues with a consumer: \(consumed) of \(n)" + (missing.isEmpty ? "" : "; first without: \(missing.prefix(3))"))

    // Stop: SIGTERM, time to exit.
    let tStop = clock.now
    let status = worker.stop(timeout: 120)
    print(String(format: "worker stopped (SIGTERM) in %.1f s, exit status %@", (clock.now - tStop).seconds, status.map(String.init) ?? "none"))
    for k in keys { _ = try? await amqp.deleteQueue("\(prefix).device.\(deviceName(k.index)).commands") }
    await amqp.close()
}

do {
    try await run(try Options(CommandLine.arguments))
} catch {
    FileHandle.standardError.write(Data("density-bench failed: \(error)\n".utf8))
    exit(1)
}
