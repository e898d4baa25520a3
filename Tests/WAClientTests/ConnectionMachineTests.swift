import WAClient
import XCTest

/// The connection state machine without I/O: inputs in, actions out.
final class ConnectionMachineTests: XCTestCase {
    let policy = ReconnectPolicy(base: .seconds(1), cap: .seconds(8), jitter: 0.5, maxAttempts: nil)

    private func transitions(_ actions: [ConnectionMachine.Action]) -> [StateTransition] {
        actions.compactMap { if case .emit(let t) = $0 { return t } else { return nil } }
    }

    private func connectDelay(_ actions: [ConnectionMachine.Action]) -> Duration? {
        actions.compactMap { if case .connect(let d) = $0 { return d } else { return nil } }.first
    }

    private func started() -> ConnectionMachine {
        var machine = ConnectionMachine(policy: policy)
        _ = machine.handle(.start)
        _ = machine.handle(.loggedIn)
        return machine
    }

    func testStartConnectsAtOnceAndLoginConnects() {
        var machine = ConnectionMachine(policy: policy)
        XCTAssertEqual(machine.state, .disconnected)
        XCTAssertTrue(machine.isStopped)
        let actions = machine.handle(.start)
        XCTAssertEqual(transitions(actions).map(\.to), [.connecting])
        XCTAssertEqual(connectDelay(actions), .zero)
        XCTAssertEqual(machine.handle(.start), [], "a second start does nothing")
        let login = machine.handle(.loggedIn)
        XCTAssertEqual(transitions(login).first, StateTransition(from: .connecting, to: .connected, reason: .loggedIn, retryIn: nil))
        XCTAssertEqual(machine.handle(.loggedIn), [], "already connected")
    }

    func testTransportLossBacksOffExponentiallyUpToTheCap() {
        var machine = started()
        var delays: [Duration] = []
        for _ in 0..<6 {
            let actions = machine.handle(.closed(.transportLost("reset")), jitterUnit: 0)
            XCTAssertEqual(machine.state, .reconnecting)
            delays.append(connectDelay(actions)!)
        }
        XCTAssertEqual(delays, [.seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(8), .seconds(8)])
        XCTAssertEqual(machine.failedAttempts, 6)
        // A login resets the backoff.
        _ = machine.handle(.loggedIn)
        XCTAssertEqual(machine.failedAttempts, 0)
        XCTAssertEqual(connectDelay(machine.handle(.closed(.keepaliveTimeout), jitterUnit: 0)), .seconds(1))
    }

    func testJitterShortensTheDelayWithinItsFraction() {
        XCTAssertEqual(policy.delay(attempt: 3, unit: 0), .seconds(4))
        XCTAssertEqual(policy.delay(attempt: 3, unit: 1), .seconds(2))
        for _ in 0..<100 {
            let delay = policy.delay(attempt: 2, unit: Double.random(in: 0...1))
            XCTAssertGreaterThanOrEqual(delay, .seconds(1))
            XCTAssertLessThanOrEqual(delay, .seconds(2))
        }
        XCTAssertEqual(policy.delay(attempt: 1000, unit: 0), .seconds(8), "huge attempt counts do not overflow")
    }

    func testRestartReconnectsAtOnceWithoutCountingAFailure() {
        var machine = started()
        let actions = machine.handle(.closed(.restartRequired))
        XCTAssertEqual(transitions(actions).first?.reason, .restartRequired)
        XCTAssertEqual(transitions(actions).first?.to, .reconnecting)
        XCTAssertEqual(connectDelay(actions), .zero)
        XCTAssertEqual(machine.failedAttempts, 0)
    }

    func testReplacedStopsForGood() {
        var machine = started()
        let actions = machine.handle(.closed(.replaced))
        XCTAssertNil(connectDelay(actions))
        XCTAssertTrue(actions.contains(.stop(.replaced)))
        XCTAssertEqual(machine.state, .disconnected)
        XCTAssertTrue(machine.isStopped)
        XCTAssertEqual(machine.handle(.closed(.transportLost("late"))), [], "no reconnect after a stop")
        XCTAssertEqual(machine.handle(.loggedIn), [])
    }

    func testDeviceRemovedLogsOutAndWipes() {
        var machine = started()
        let actions = machine.handle(.closed(.deviceRemoved))
        XCTAssertEqual(machine.state, .loggedOut)
        XCTAssertTrue(actions.contains(.wipeStore))
        XCTAssertTrue(actions.contains(.stop(.loggedOut(.deviceRemoved))))
        XCTAssertNil(connectDelay(actions))
    }

    func testFailureReasons() {
        func run(_ reason: Int) -> (ConnectionMachine, [ConnectionMachine.Action]) {
            var machine = started()
            let actions = machine.handle(.closed(.failure(LoginFailure(reason: reason, banCode: 7, expiresIn: 60))), jitterUnit: 0)
            return (machine, actions)
        }
        let (m401, a401) = run(401)
        XCTAssertEqual(m401.state, .loggedOut)
        XCTAssertTrue(a401.contains(.wipeStore))

        let (m402, a402) = run(402)
        XCTAssertEqual(m402.state, .disconnected)
        XCTAssertFalse(a402.contains(.wipeStore), "a temporary ban keeps the keys")
        XCTAssertTrue(a402.contains(.stop(.banned(LoginFailure(reason: 402, banCode: 7, expiresIn: 60)))))

        for reason in [403, 406] {
            let (machine, actions) = run(reason)
            XCTAssertEqual(machine.state, .loggedOut, "\(reason)")
            XCTAssertTrue(actions.contains(.wipeStore), "\(reason)")
            XCTAssertTrue(actions.contains(.stop(.banned(LoginFailure(reason: reason, banCode: 7, expiresIn: 60)))), "\(reason)")
        }

        let (m405, a405) = run(405)
        XCTAssertEqual(m405.state, .disconnected)
        XCTAssertTrue(a405.contains(.stop(.clientOutdated)))

        for reason in [500, 503] {
            let (machine, actions) = run(reason)
            XCTAssertEqual(machine.state, .reconnecting, "\(reason) is retried")
            XCTAssertEqual(connectDelay(actions), .seconds(1))
        }

        // Every other reason stops with its code and keeps the keys (whatsmeow's
        // handleConnectFailure: only 500/503 auto-reconnect).
        for reason in [400, 409, 413, 414, 415, 418, 501, 599, 0] {
            let (machine, actions) = run(reason)
            XCTAssertEqual(machine.state, .disconnected, "\(reason)")
            XCTAssertTrue(machine.isStopped, "\(reason) is not retried")
            XCTAssertNil(connectDelay(actions), "\(reason)")
            XCTAssertFalse(actions.contains(.wipeStore), "\(reason) keeps the keys")
            XCTAssertTrue(actions.contains(.stop(.refused(LoginFailure(reason: reason, banCode: 7, expiresIn: 60)))), "\(reason)")
        }
    }

    func testFailureCodesAreStable() {
        let expected: [Int: String] = [
            400: "LOGIN_REFUSED", 401: "LOGGED_OUT", 402: "TEMPORARILY_BANNED", 403: "ACCOUNT_LOCKED",
            405: "CLIENT_OUTDATED", 406: "ACCOUNT_BANNED", 409: "BAD_USER_AGENT", 413: "AUTH_TOKEN_EXPIRED",
            414: "AUTH_TOKEN_INVALID", 415: "ACCOUNT_NOT_FOUND", 418: "CLIENT_UNKNOWN", 500: "SERVER_ERROR",
            501: "SERVER_EXPERIMENTAL", 503: "SERVICE_UNAVAILABLE", 444: "LOGIN_REFUSED",
        ]
        for (reason, code) in expected { XCTAssertEqual(LoginFailure(reason: reason).code, code, "\(reason)") }
        XCTAssertFalse(LoginFailure(reason: 500).isPermanent)
        XCTAssertTrue(LoginFailure(reason: 409).isPermanent)
    }

    /// Link errors and 500/503 back off exponentially up to the cap, each delay jittered below it.
    func testRetriedReasonsBackOffBoundedAndJittered() {
        var machine = ConnectionMachine(policy: ReconnectPolicy(base: .seconds(1), cap: .seconds(8), jitter: 0.5))
        _ = machine.handle(.start)
        var delays: [Duration] = []
        for reason: CloseReason in [.transportLost("x"), .failure(LoginFailure(reason: 503)), .streamError(code: "503"),
                                    .keepaliveTimeout, .failure(LoginFailure(reason: 500)), .transportLost("y")] {
            delays.append(connectDelay(machine.handle(.closed(reason), jitterUnit: 0)) ?? .zero)
        }
        XCTAssertEqual(delays, [.seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(8), .seconds(8)])
        let jittered = connectDelay(machine.handle(.closed(.transportLost("z")), jitterUnit: 1))
        XCTAssertEqual(jittered, .seconds(4), "full jitter halves the capped delay")
        XCTAssertEqual(machine.state, .reconnecting)
    }

    func testVersionParsing() {
        XCTAssertEqual(WAClientConfiguration.parseVersion("2.3000.1045649367"), [2, 3000, 1_045_649_367])
        for bad in ["", "2.3000", "2.3000.1.4", "2.3000.x", "0.1.2", "2..3", " 2.3000.1", "2.3000.99999999999", "２.3000.1"] {
            XCTAssertNil(WAClientConfiguration.parseVersion(bad), bad)
        }
        XCTAssertEqual(WAClientConfiguration().appVersion, WAClientConfiguration.defaultAppVersion)
    }

    func testGivesUpAfterMaxAttempts() {
        var machine = ConnectionMachine(policy: ReconnectPolicy(base: .milliseconds(10), cap: .seconds(1), jitter: 0, maxAttempts: 2))
        _ = machine.handle(.start)
        XCTAssertNotNil(connectDelay(machine.handle(.closed(.transportLost("a")))))
        XCTAssertNotNil(connectDelay(machine.handle(.closed(.transportLost("b")))))
        let last = machine.handle(.closed(.transportLost("c")))
        XCTAssertNil(connectDelay(last))
        XCTAssertTrue(last.contains(.stop(.gaveUp(attempts: 2))))
        XCTAssertTrue(machine.isStopped)
    }

    func testOwnerStopAndRestart() {
        var machine = started()
        let stop = machine.handle(.closed(.ownerStopped))
        XCTAssertTrue(stop.contains(.stop(.ownerRequested)))
        XCTAssertEqual(machine.state, .disconnected)
        let again = machine.handle(.start)
        XCTAssertEqual(connectDelay(again), .zero)
        XCTAssertEqual(machine.state, .connecting)
    }

    func testKeepalivePolicy() {
        let policy = KeepalivePolicy()
        XCTAssertEqual(policy.interval(unit: 0), .seconds(20))
        XCTAssertEqual(policy.interval(unit: 1), .seconds(30))
        XCTAssertEqual(policy.timeout, .seconds(10))
        XCTAssertEqual(policy.detectionBound, .seconds(40))
        XCTAssertEqual(KeepalivePolicy(minInterval: .seconds(5), maxInterval: .seconds(1)).maxInterval, .seconds(5))
    }
}
