import Foundation
import NIOCore
import NIOPosix
import WABinary
import WAClient
import WACrypto
import WASim
import XCTest

/// WAClient against WASim on loopback: login, pairing, restart, faults.
final class ConnectionEndToEndTests: XCTestCase {
    func testQRLoginEndToEnd() async throws {
        let harness = try await SimHarness.start()
        let store = InMemoryDeviceStore()
        let client = await harness.client(store: store)
        let info = try await within(20) { try await harness.qrLogin(client, phone: "15550001111") }
        XCTAssertEqual(info.jid.user, "15550001111")
        XCTAssertEqual(info.jid.device, 1)
        XCTAssertEqual(info.lid?.server, "lid")
        XCTAssertEqual(info.platform, "android")
        try await client.waitForState(.connected, timeout: .seconds(5))
        let online = await harness.sim.isOnline(info.jid)
        XCTAssertTrue(online)
        let record = try await store.loadDevice()
        XCTAssertNotNil(record?.account)
        XCTAssertEqual(record?.account?.deviceSignature.count, 64)
        XCTAssertEqual(record?.jid, info.jid)
        // The 515 after pairing shows as a restart, then the login payload connects.
        let reasons = await client.recentTransitions.map(\.reason)
        XCTAssertTrue(reasons.contains(.restartRequired))
        XCTAssertEqual(reasons.last, .loggedIn)
        // The link is usable: a ping IQ comes back.
        _ = try await client.sendIQ(Node("iq", [
            Attribute("to", .jid(.serverJID)), Attribute("type", "get"), Attribute("xmlns", "w:p"),
        ], content: .nodes([Node("ping")])))
        await harness.shutdown(client)
    }

    func testPairingCodeLoginEndToEnd() async throws {
        let harness = try await SimHarness.start()
        await harness.sim.createPhone(number: "15550002222")
        let store = InMemoryDeviceStore()
        let client = await harness.client(store: store)
        let code = try await within(20) { try await client.pairWithCode(phoneNumber: "+1 555 000 2222") }
        XCTAssertNotNil(code.wholeMatch(of: /[1-9A-HJ-NP-TV-Z]{4}-[1-9A-HJ-NP-TV-Z]{4}/), code)
        let jid = try await within(20) { try await harness.sim.enterPairingCode(phone: "15550002222", code: code) }
        try await client.waitForState(.connected, timeout: .seconds(10))
        let info = await client.loginInfo
        XCTAssertEqual(info?.jid, jid)
        let stored = try await store.loadDevice()
        XCTAssertNotNil(stored?.account)
        await harness.shutdown(client)
    }

    func testWrongPairingCodeIsRefused() async throws {
        let harness = try await SimHarness.start()
        await harness.sim.createPhone(number: "15550002223")
        let client = await harness.client()
        let code = try await within(20) { try await client.pairWithCode(phoneNumber: "15550002223") }
        let wrong = code == "2222-2222" ? "3333-3333" : "2222-2222"
        do {
            _ = try await harness.sim.enterPairingCode(phone: "15550002223", code: wrong, timeout: .seconds(3))
            XCTFail("a wrong code must not link")
        } catch let error as SimError {
            XCTAssertTrue(["sim.pairing_failed", "sim.timeout"].contains(error.code), error.description)
        }
        let state = await client.state
        XCTAssertNotEqual(state, .connected)
        await harness.shutdown(client)
    }

    func testInvalidPhoneNumberRefusedBeforeAnythingIsSent() async throws {
        let harness = try await SimHarness.start()
        let client = await harness.client()
        for bad in ["0123456789", "12345", "+1 555 abc 1234", "", "1234567890123456"] {
            do {
                _ = try await client.pairWithCode(phoneNumber: bad)
                XCTFail("\(bad) accepted")
            } catch let error as WAClientError {
                XCTAssertEqual(error.code, .invalidPhoneNumber, bad)
            }
        }
        let state = await client.state
        XCTAssertEqual(state, .disconnected)
        let connections = await harness.sim.connectionCount
        XCTAssertEqual(connections, 0)
        await harness.shutdown(client)
    }

    func testResumeAfterProcessRestart() async throws {
        let harness = try await SimHarness.start()
        let store = InMemoryDeviceStore()
        let first = await harness.client(store: store)
        let info = try await within(20) { try await harness.qrLogin(first, phone: "15550003333") }
        await first.stop()
        try await eventually(5, "device offline") { await !harness.sim.isOnline(info.jid) }

        let second = await harness.client(store: store)
        try await second.start()
        try await second.waitForState(.connected, timeout: .seconds(10))
        let resumed = await second.loginInfo
        XCTAssertEqual(resumed?.jid, info.jid)
        XCTAssertEqual(resumed?.lid, info.lid)
        let reasons = await second.recentTransitions.map(\.reason)
        XCTAssertEqual(reasons, [.started, .loggedIn], "a stored device logs in directly, no pairing")
        try await eventually(5, "device online") { await harness.sim.isOnline(info.jid) }
        await harness.shutdown(second)
    }

    func testStreamError515Restarts() async throws {
        let harness = try await SimHarness.start()
        let client = await harness.client()
        let info = try await within(20) { try await harness.qrLogin(client, phone: "15550004444") }
        let before = await client.recentTransitions.count
        await harness.sim.inject(.streamError(code: 515), device: info.jid)
        try await eventually(10, "restart and login") {
            let transitions = await client.recentTransitions.dropFirst(before)
            return transitions.contains { $0.to == .reconnecting && $0.reason == .restartRequired && $0.retryIn == .zero }
                && transitions.last?.to == .connected
        }
        await harness.shutdown(client)
    }

    func testReplacedStopsWithoutReconnecting() async throws {
        let harness = try await SimHarness.start()
        let store = InMemoryDeviceStore()
        let first = await harness.client(store: store)
        let info = try await within(20) { try await harness.qrLogin(first, phone: "15550005555") }
        let second = await harness.client(store: store)
        try await second.start()
        try await second.waitForState(.connected, timeout: .seconds(10))
        try await eventually(5, "first client stopped") { await first.isStopped }
        let last = await first.recentTransitions.last
        XCTAssertEqual(last?.reason, .replaced)
        XCTAssertEqual(last?.to, .disconnected)
        // It does not fight back: after several backoff periods it is still stopped and the second stays online.
        try await Task.sleep(for: .milliseconds(800))
        let firstState = await first.state
        XCTAssertEqual(firstState, .disconnected)
        let secondState = await second.state
        XCTAssertEqual(secondState, .connected)
        let online = await harness.sim.isOnline(info.jid)
        XCTAssertTrue(online)
        let kept = try await store.loadDevice()
        XCTAssertNotNil(kept, "replaced keeps the keys")
        await harness.shutdown(first, second)
    }

    func testUnlinkedDeviceIsLoggedOutAndWiped() async throws {
        let harness = try await SimHarness.start()
        let store = InMemoryDeviceStore()
        let client = await harness.client(store: store)
        let info = try await within(20) { try await harness.qrLogin(client, phone: "15550006666") }
        await harness.sim.unlink(device: info.jid)
        try await client.waitForState(.loggedOut, timeout: .seconds(5))
        let record = try await store.loadDevice()
        XCTAssertNil(record, "keys wiped")
        let wipes = await store.wipeCount
        XCTAssertEqual(wipes, 1)
        let last = await client.recentTransitions.last
        XCTAssertEqual(last?.reason, .deviceRemoved)
        try await Task.sleep(for: .milliseconds(500))
        let stopped = await client.isStopped
        XCTAssertTrue(stopped)
        let state = await client.state
        XCTAssertEqual(state, .loggedOut)
        await harness.shutdown(client)
    }

    func testLoginFailuresMapToTypedOutcomes() async throws {
        let harness = try await SimHarness.start()
        struct Case { let reason: Int; let state: ConnectionState; let wiped: Bool; let stop: (StopReason) -> Bool }
        let cases: [Case] = [
            Case(reason: 402, state: .disconnected, wiped: false) {
                if case .banned(let f) = $0 { return f.kind == .temporaryBan && f.banCode == 101 && f.expiresIn == 3600 }
                return false
            },
            Case(reason: 403, state: .loggedOut, wiped: true) {
                if case .banned(let f) = $0 { return f.kind == .locked } else { return false }
            },
            Case(reason: 405, state: .disconnected, wiped: false) { $0 == .clientOutdated },
            Case(reason: 406, state: .loggedOut, wiped: true) {
                if case .banned(let f) = $0 { return f.kind == .banned } else { return false }
            },
            Case(reason: 401, state: .loggedOut, wiped: true) {
                if case .loggedOut = $0 { return true } else { return false }
            },
            // Not a logout, a ban or outdated, and not 500/503: stop, keep the keys, never retry.
            Case(reason: 409, state: .disconnected, wiped: false) {
                if case .refused(let f) = $0 { return f.code == "BAD_USER_AGENT" } else { return false }
            },
            Case(reason: 418, state: .disconnected, wiped: false) {
                if case .refused(let f) = $0 { return f.code == "CLIENT_UNKNOWN" } else { return false }
            },
        ]
        for (index, test) in cases.enumerated() {
            let store = InMemoryDeviceStore()
            let client = await harness.client(store: store)
            let info = try await within(20) { try await harness.qrLogin(client, phone: "1555100000\(index)") }
            await harness.sim.inject(
                .failNextLogin(reason: test.reason, code: test.reason == 402 ? 101 : nil, expire: test.reason == 402 ? 3600 : nil),
                device: info.jid)
            await harness.sim.inject(.dropConnection, device: info.jid)
            try await eventually(10, "client stopped after failure \(test.reason)") { await client.isStopped }
            let state = await client.state
            XCTAssertEqual(state, test.state, "failure \(test.reason)")
            let last = await client.recentTransitions.last
            if case .failure(let failure) = last?.reason {
                XCTAssertEqual(failure.reason, test.reason)
            } else {
                XCTFail("failure \(test.reason): last reason \(String(describing: last?.reason))")
            }
            let record = try await store.loadDevice()
            XCTAssertEqual(record == nil, test.wiped, "failure \(test.reason) wipe")
            await client.stop()
            // The stop reason reached the event stream.
            var stopReason: StopReason?
            for await event in client.events {
                if case .stopped(let reason) = event, reason != .ownerRequested { stopReason = reason; break }
            }
            XCTAssertTrue(stopReason.map(test.stop) ?? false, "failure \(test.reason): \(String(describing: stopReason))")
        }
        await harness.sim.shutdown()
    }

    /// 500 and 503 are the failures whatsmeow reconnects after: the client logs in again by itself.
    func testServerUnavailableFailuresReconnect() async throws {
        let harness = try await SimHarness.start()
        for (index, reason) in [500, 503].enumerated() {
            let client = await harness.client()
            let info = try await within(20) { try await harness.qrLogin(client, phone: "1555200000\(index)") }
            await harness.sim.inject(.failNextLogin(reason: reason, code: nil, expire: nil), device: info.jid)
            await harness.sim.inject(.dropConnection, device: info.jid)
            try await eventually(10, "failure \(reason) seen") {
                await client.recentTransitions.contains { $0.reason == .failure(LoginFailure(reason: reason)) }
            }
            try await client.waitForState(.connected, timeout: .seconds(10))
            let stopped = await client.isStopped
            XCTAssertFalse(stopped, "\(reason)")
            await client.stop()
        }
        await harness.sim.shutdown()
    }

    /// The simulator's default minimum refuses last year's build, and accepts the client's default.
    func testDefaultVersionIsCurrentAndLastYearsIsRefused() async throws {
        XCTAssertFalse(WAClientConfiguration.defaultAppVersion.lexicographicallyPrecedes(WASim.Configuration.currentMinimumAppVersion))
        let harness = try await SimHarness.start()
        let stale = await harness.client { $0.appVersion = [2, 3000, 1_027_868_496] }
        try await stale.start()
        try await eventually(10, "stopped") { await stale.isStopped }
        let last = await stale.recentTransitions.last
        XCTAssertEqual(last?.reason, .failure(LoginFailure(reason: 405)))
        await stale.stop()
        let current = await harness.client()
        _ = try await within(20) { try await harness.qrLogin(current, phone: "15552000099") }
        await harness.shutdown(current)
    }

    func testOutdatedVersionAtRegistrationGets405() async throws {
        let harness = try await SimHarness.start()
        let client = await harness.client { $0.appVersion = [2, 2400, 1] }
        try await client.start()
        try await eventually(10, "stopped") { await client.isStopped }
        let last = await client.recentTransitions.last
        XCTAssertEqual(last?.reason, .failure(LoginFailure(reason: 405)))
        await harness.shutdown(client)
    }

    func testDroppedLinkReconnects() async throws {
        let harness = try await SimHarness.start()
        let client = await harness.client()
        let info = try await within(20) { try await harness.qrLogin(client, phone: "15550007777") }
        let before = await client.recentTransitions.count
        await harness.sim.inject(.dropConnection, device: info.jid)
        try await eventually(10, "reconnected") {
            let transitions = await client.recentTransitions.dropFirst(before)
            return transitions.first?.to == .reconnecting && transitions.last?.to == .connected
        }
        let transitions = await client.recentTransitions.dropFirst(before)
        if case .transportLost = transitions.first?.reason {} else {
            XCTFail("expected transport_lost, got \(String(describing: transitions.first?.reason))")
        }
        XCTAssertNotNil(transitions.first?.retryIn)
        try await eventually(5, "device online again") { await harness.sim.isOnline(info.jid) }
        await harness.shutdown(client)
    }

    func testSilentServerIsDetectedWithinKeepaliveBound() async throws {
        let harness = try await SimHarness.start()
        let policy = KeepalivePolicy(minInterval: .milliseconds(300), maxInterval: .milliseconds(500), timeout: .milliseconds(500))
        let client = await harness.client { $0.keepalive = policy }
        let info = try await within(20) { try await harness.qrLogin(client, phone: "15550008888") }
        let before = await client.recentTransitions.count
        await harness.sim.inject(.ignorePings(true), device: info.jid)
        let started = ContinuousClock.now
        try await eventually(5, "keepalive timeout") {
            await client.recentTransitions.dropFirst(before).contains { $0.reason == .keepaliveTimeout }
        }
        let elapsed = ContinuousClock.now - started
        // The bound plus scheduling slack for a loaded 2-core CI machine.
        XCTAssertLessThanOrEqual(elapsed, policy.detectionBound + .milliseconds(500), "detected in \(elapsed)")
        // The new connection answers pings again: back to connected.
        try await eventually(5, "reconnected") { await client.recentTransitions.last?.to == .connected }
        await harness.shutdown(client)
    }

    func testRealRootDefaultRefusesSimulatorChain() async throws {
        let harness = try await SimHarness.start()
        var configuration = await harness.configuration()
        configuration.noiseTrustRoot = nil // WhatsApp's real root
        configuration.reconnect.maxAttempts = 2
        let client = WAClient(store: InMemoryDeviceStore(), configuration: configuration)
        try await client.start()
        try await eventually(10, "gave up") { await client.isStopped }
        let transitions = await client.recentTransitions
        XCTAssertFalse(transitions.contains { $0.to == .connected })
        let certFailures = transitions.filter {
            if case .transportLost(let why) = $0.reason { return why.contains("client.cert_bad_signature") }
            return false
        }
        XCTAssertEqual(certFailures.count, 2, "\(transitions)")
        XCTAssertEqual(transitions.last?.reason, .gaveUp(attempts: 2))

        // The same simulator with its root configured is accepted.
        let trusting = await harness.client()
        let stream = await trusting.loginWithQR()
        let first: QRLoginEvent? = try await within(10) {
            for try await event in stream { return event }
            return nil
        }
        if case .code(let code) = first {
            XCTAssertEqual(code.index, 0)
            XCTAssertEqual(code.validFor, .seconds(60))
        } else {
            XCTFail("expected a QR code")
        }
        await harness.shutdown(client, trusting)
    }

    func testQRCodesRotateThenTimeOut() async throws {
        let harness = try await SimHarness.start()
        let client = await harness.client {
            $0.qrFirstTimeout = .milliseconds(150)
            $0.qrLaterTimeout = .milliseconds(50)
        }
        let stream = await client.loginWithQR()
        var codes: [QRCode] = []
        do {
            for try await event in stream {
                if case .code(let code) = event { codes.append(code) }
            }
            XCTFail("QR stream must end with a timeout")
        } catch let error as WAClientError {
            XCTAssertEqual(error.code, .qrTimeout)
        }
        XCTAssertEqual(codes.count, 6)
        XCTAssertEqual(Set(codes.map(\.text)).count, 6, "each ref gives a new code")
        XCTAssertTrue(codes.allSatisfy { $0.text.hasPrefix("https://wa.me/settings/linked_devices#") }, "the link form is the default")
        XCTAssertEqual(codes.first?.validFor, .milliseconds(150))
        try await eventually(5, "stopped") { await client.isStopped }
        let last = await client.recentTransitions.last
        XCTAssertEqual(last?.reason, .qrTimeout)
        await harness.shutdown(client)
    }

    func testTLSListener() async throws {
        let harness = try await SimHarness.start { $0.tlsPort = 0 }
        let secureEndpoint = await harness.sim.secureEndpoint
        let endpoint = try XCTUnwrap(secureEndpoint)
        let roots = try XCTUnwrap(harness.sim.tls).trustRoots()
        let client = await harness.client {
            $0.endpoint = endpoint
            $0.tlsTrustRoots = roots
        }
        let info = try await within(20) { try await harness.qrLogin(client, phone: "15550009999") }
        XCTAssertEqual(info.jid.user, "15550009999")

        // Without the simulator's certificate trusted, TLS fails.
        let untrusting = await harness.client {
            $0.endpoint = endpoint
            $0.reconnect.maxAttempts = 1
        }
        try await untrusting.start()
        try await eventually(10, "gave up") { await untrusting.isStopped }
        let connectedEver = await untrusting.recentTransitions.contains { $0.to == .connected }
        XCTAssertFalse(connectedEver)
        await harness.shutdown(client, untrusting)
    }

    func testBrokenOrHostileServerBytesDropTheLinkAndReconnect() async throws {
        let harness = try await SimHarness.start()
        let client = await harness.client()
        let info = try await within(20) { try await harness.qrLogin(client, phone: "15550001234") }
        for (bytes, code) in [
            (Data([0, 0, 20]) + Data(repeating: 0xAB, count: 20), "client.noise_decrypt_failed"),
            (Data([0xFF, 0xFF, 0xFF]), "client.frame_too_large"),
        ] {
            let before = await client.recentTransitions.count
            await harness.sim.inject(.rawBytes(bytes), device: info.jid)
            try await eventually(10, "reconnected after \(code)") {
                let transitions = await client.recentTransitions.dropFirst(before)
                return transitions.first?.to == .reconnecting && transitions.last?.to == .connected
            }
            let first = await client.recentTransitions.dropFirst(before).first
            if case .transportLost(let why) = first?.reason {
                XCTAssertTrue(why.contains(code), why)
            } else {
                XCTFail("expected transport_lost(\(code)), got \(String(describing: first?.reason))")
            }
        }
        await harness.shutdown(client)
    }

    /// A feature sees login (and can send IQs from there) and the stanzas it claims; the events stream tells the story in order.
    func testFeaturesAndEventStream() async throws {
        actor Recorder {
            var counts: [String] = []
            var notifications: [String] = []
            func add(count: String) { counts.append(count) }
            func add(notification: String) { notifications.append(notification) }
        }
        struct PreKeyCountFeature: WAClientFeature {
            let recorder: Recorder
            var stanzaTags: Set<String> { ["notification"] }
            func didLogin(_ info: LoginInfo, client: WAClient) async {
                let answer = try? await client.sendIQ(Node("iq", [
                    Attribute("to", .jid(.serverJID)), Attribute("type", "get"), Attribute("xmlns", "encrypt"),
                ], content: .nodes([Node("count")])))
                await recorder.add(count: answer?.child("count")?.string("value") ?? "none")
            }
            func handle(_ node: Node, client: WAClient) async {
                await recorder.add(notification: node.string("type") ?? "")
                await client.ack(node)
            }
        }
        let recorder = Recorder()
        let harness = try await SimHarness.start()
        let client = WAClient(store: InMemoryDeviceStore(), configuration: await harness.configuration(),
                              features: [PreKeyCountFeature(recorder: recorder)])
        let info = try await within(20) { try await harness.qrLogin(client, phone: "15550004321") }
        try await eventually(5, "didLogin ran") { await recorder.counts == ["0"] }

        var seen: [String] = []
        for await event in client.events {
            switch event {
            case .qr: if seen.last != "qr" { seen.append("qr") }
            case .paired(let jid, _, let platform, _):
                XCTAssertEqual(jid, info.jid)
                XCTAssertEqual(platform, "android")
                seen.append("paired")
            case .state(let t): seen.append(t.to.rawValue)
            case .loggedIn: seen.append("loggedIn")
            case .offlineSyncCompleted(let count):
                // The phone's initial sync (app-state key share, three history-sync notifications)
                // waits for the fresh device; this client has no messaging feature, so nothing acks them.
                XCTAssertEqual(count, 4)
                seen.append("offline")
            default: break
            }
            if seen.last == "offline" { break }
        }
        XCTAssertEqual(seen, ["connecting", "qr", "paired", "reconnecting", "connected", "loggedIn", "offline"])
        var transitions: [ConnectionState] = []
        for await transition in client.stateChanges {
            transitions.append(transition.to)
            if transitions.count == 3 { break }
        }
        XCTAssertEqual(transitions, [.connecting, .reconnecting, .connected])
        await harness.shutdown(client)
    }

    /// A server that accepts TCP and then says nothing: the connect bound fires and the client backs off.
    func testSilentServerHitsTheConnectTimeout() async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { $0.eventLoop.makeSucceededVoidFuture() }
            .bind(host: "127.0.0.1", port: 0).get()
        var configuration = WAClientConfiguration.local(
            endpoint: URL(string: "ws://127.0.0.1:\(server.localAddress!.port!)/ws/chat")!, noiseRoot: Curve25519KeyPair.generate().publicKey)
        configuration.connectTimeout = .milliseconds(300)
        configuration.reconnect.maxAttempts = 1
        let client = WAClient(store: InMemoryDeviceStore(), configuration: configuration)
        let started = ContinuousClock.now
        try await client.start()
        try await eventually(10, "gave up") { await client.isStopped }
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(3))
        let reasons = await client.recentTransitions.map(\.reason)
        XCTAssertEqual(reasons.count, 3, "\(reasons)")
        for reason in reasons.dropFirst().prefix(1) {
            if case .transportLost(let why) = reason { XCTAssertTrue(why.contains("client.timeout"), why) } else { XCTFail("\(reason)") }
        }
        XCTAssertEqual(reasons.last, .gaveUp(attempts: 1))
        try await server.close()
    }
}
