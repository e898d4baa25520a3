// sim-scale-bench: how many logged-in client connections one simulator holds
// on this machine and what each costs it. A report, not a test:
//   swift build -c release --product sim-scale-bench
//   .build/release/sim-scale-bench --connections 10000 [--concurrency 100] [--hold 40]
//
// The simulator runs in a child process (this executable with `--serve`), so
// its /proc/<pid>/status RSS is the simulator's alone. The child provisions N
// companion devices (keys derived from a seed both processes know, so no
// pairing is needed), then this process opens N `WAClient`s — each a real
// WebSocket, WA header, Noise XX handshake with certificate check, and
// ClientPayload login of a registered device — and keeps them alive with
// `w:p` pings for `--hold` seconds (longer than the 20–30 s ping interval).
// Reported: RSS before/after, per connection, logins per second, failures.
import Foundation
import Logging
import WABinary
import WAClient
import WACrypto
import WAProto
import WASim
#if canImport(Glibc)
import Glibc
#endif

let devicesPerPhone = 100

struct Options {
    var connections = 10_000
    var concurrency = 100
    var hold = 40.0
    var seed = "sim-scale"
    var serve = false

    init(_ arguments: [String]) {
        var iterator = arguments.dropFirst().makeIterator()
        while let argument = iterator.next() {
            switch argument {
            case "--connections": connections = Int(iterator.next() ?? "") ?? connections
            case "--concurrency": concurrency = Int(iterator.next() ?? "") ?? concurrency
            case "--hold": hold = Double(iterator.next() ?? "") ?? hold
            case "--seed": seed = iterator.next() ?? seed
            case "--serve": serve = true
            default: FileHandle.standardError.write(Data("unknown argument \(argument)\n".utf8)); exit(2)
            }
        }
    }
}

/// Key i of the run: SHA-256(seed ‖ label ‖ i) as a clamped Curve25519 private key.
func derivedKey(_ seed: String, _ label: String, _ index: Int) -> Curve25519KeyPair {
    let raw = Symmetric.sha256(Data("\(seed)/\(label)/\(index)".utf8))
    return Curve25519KeyPair(privateKey: try! Curve25519PrivateKey(rawRepresentation: raw))  // 32 bytes: cannot throw
}

func phoneNumber(_ index: Int) -> String { "1999" + String(format: "%07d", index / devicesPerPhone) }

/// The file-descriptor limit raised to its hard limit; returns (soft, hard) after.
func raiseFileLimit() -> (UInt64, UInt64) {
    var limit = rlimit()
    getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    limit.rlim_cur = limit.rlim_max
    setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    return (UInt64(limit.rlim_cur), UInt64(limit.rlim_max))
}

/// A field of /proc/<pid>/status in kB (VmRSS, VmHWM).
func statusKB(_ pid: Int32, _ field: String) -> Int {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return -1 }
    for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? -1
    }
    return -1
}

// MARK: Child: the simulator

/// Line protocol on stdin/stdout: prints `port <n>` when ready; `stat` → `stat <connections>`;
/// `quit` (or EOF) → shuts the simulator down and exits 0.
func serve(_ options: Options) async throws {
    _ = raiseFileLimit()
    var configuration = WASim.Configuration()
    configuration.mediaPort = nil
    configuration.limits.maxConnections = options.connections + 100
    configuration.root = derivedKey(options.seed, "root", 0)
    let sim = try WASim(configuration: configuration)
    for index in 0..<options.connections {
        _ = await sim.provisionDevice(
            phone: phoneNumber(index), noiseKey: derivedKey(options.seed, "noise", index).publicKey,
            identityKey: derivedKey(options.seed, "identity", index).publicKey, registrationID: UInt32(index % 16_000 + 1))
    }
    try await sim.start()
    // Straight to fd 1 (no stdio): fflush(nil) would wait on stdin's lock, held by the reader thread.
    func reply(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }
    reply("port \(await sim.port)")
    // stdin is read on its own thread: a blocking read must not hold one of the two
    // cooperative threads the simulator's actors run on.
    let (lines, sink) = AsyncStream<String>.makeStream()
    Thread {
        while let line = readLine() { sink.yield(line) }
        sink.finish()
    }.start()
    for await line in lines {
        if line == "stat" {
            reply("stat \(await sim.connectionCount)")
        } else if line == "quit" { break }
    }
    await sim.shutdown()
}

// MARK: Parent: the clients

final class LineReader: @unchecked Sendable {
    // One reader at a time (the parent's main flow); the handle is only read here.
    let handle: FileHandle
    var buffer = Data()
    init(_ handle: FileHandle) { self.handle = handle }
    func line() -> String? {
        while true {
            if let newline = buffer.firstIndex(of: 0x0A) {
                let line = String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)
                buffer = Data(buffer[(newline + 1)...])
                return line
            }
            let chunk = handle.availableData
            if chunk.isEmpty { return nil }
            buffer.append(chunk)
        }
    }
}

func run(_ options: Options) async throws {
    let (soft, hard) = raiseFileLimit()
    print("sim-scale-bench: \(options.connections) connections, \(options.concurrency) logins in flight, hold \(options.hold) s")
    print("fd limit (RLIMIT_NOFILE) raised to \(soft) (hard \(hard)) in both processes")
    let child = Process()
    child.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    child.arguments = ["--serve", "--connections", String(options.connections), "--seed", options.seed]
    let toChild = Pipe(), fromChild = Pipe()
    child.standardInput = toChild
    child.standardOutput = fromChild
    try child.run()
    let reader = LineReader(fromChild.fileHandleForReading)
    func ask(_ command: String) -> String? {
        toChild.fileHandleForWriting.write(Data((command + "\n").utf8))
        return reader.line()
    }
    var ready = reader.line()
    while let line = ready, !line.hasPrefix("port ") { ready = reader.line() }
    guard let ready, let port = Int(ready.dropFirst(5)) else {
        print("simulator did not start"); exit(1)
    }
    let pid = child.processIdentifier
    try await Task.sleep(for: .seconds(1))
    let before = statusKB(pid, "VmRSS")
    print("simulator pid \(pid) on port \(port); RSS with \(options.connections) devices provisioned, no connection: \(before) kB")

    let root = derivedKey(options.seed, "root", 0).publicKey
    var configuration = WAClientConfiguration.local(endpoint: URL(string: "ws://127.0.0.1:\(port)/ws/chat")!, noiseRoot: root)
    configuration.connectTimeout = .seconds(30)
    configuration.iqTimeout = .seconds(30)
    configuration.keepalive = KeepalivePolicy(minInterval: .seconds(20), maxInterval: .seconds(30), timeout: .seconds(20))
    configuration.reconnect = ReconnectPolicy(base: .seconds(1), cap: .seconds(5), jitter: 0.5)

    func client(_ index: Int) throws -> WAClient {
        let identity = derivedKey(options.seed, "identity", index)
        let record = DeviceRecord(
            noiseKey: derivedKey(options.seed, "noise", index), identityKey: identity,
            registrationID: UInt32(index % 16_000 + 1), signedPreKey: try SignedPreKey.generate(id: 1, signedBy: identity),
            advSecret: Data(count: 32), account: WAAdv_ADVSignedDeviceIdentity(),  // login sends no ADV data
            jid: JID(user: phoneNumber(index), device: UInt16(index % devicesPerPhone + 1), server: JID.userServer))
        return WAClient(store: InMemoryDeviceStore(record), configuration: configuration)
    }

    // Keys and records first, so the login figures hold only connections and logins.
    let prepared = try (0..<options.connections).map(client)
    let clock = ContinuousClock()
    let started = clock.now
    var clients: [WAClient] = []
    var failures = 0
    try await withThrowingTaskGroup(of: (WAClient, Bool).self) { group in
        var next = 0
        func launch() throws {
            let c = prepared[next]
            next += 1
            group.addTask {
                do {
                    try await c.start()
                    try await c.waitForState(.connected, timeout: .seconds(60))
                    return (c, true)
                } catch { return (c, false) }
            }
        }
        while next < min(options.concurrency, options.connections) { try launch() }
        while let (c, ok) = try await group.next() {
            clients.append(c)
            if !ok { failures += 1 }
            if next < options.connections { try launch() }
        }
    }
    let elapsed = clock.now - started
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    let loggedIn = options.connections - failures
    let afterLogin = statusKB(pid, "VmRSS")
    print(String(format: "logins: %d ok, %d failed in %.1f s: %.0f logins/s", loggedIn, failures, seconds, Double(loggedIn) / seconds))
    print("simulator RSS after logins: \(afterLogin) kB; sim reports \(ask("stat") ?? "?")")

    try await Task.sleep(for: .seconds(options.hold))
    var connected = 0
    for c in clients where await c.state == .connected { connected += 1 }
    let after = statusKB(pid, "VmRSS")
    let peak = statusKB(pid, "VmHWM")
    let perConnection = Double(after - before) / Double(max(connected, 1))
    print("after holding \(options.hold) s with pings: \(connected) still connected; sim reports \(ask("stat") ?? "?")")
    print(String(format: "simulator RSS %d kB (peak %d kB): %.1f kB per connection over the idle baseline", after, peak, perConnection))
    print("client process RSS: \(statusKB(getpid(), "VmRSS")) kB for \(clients.count) WAClients")

    for c in clients { await c.stop() }
    try await Task.sleep(for: .seconds(2))
    print("after the clients stopped: sim reports \(ask("stat") ?? "?")")
    toChild.fileHandleForWriting.write(Data("quit\n".utf8))
    child.waitUntilExit()
    print("simulator exited with status \(child.terminationStatus)")
}

let options = Options(CommandLine.arguments)
// Warnings and errors only, on stderr: stdout carries the child's line protocol and the report.
LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = .warning
    return handler
}
if options.serve { try await serve(options) } else { try await run(options) }
