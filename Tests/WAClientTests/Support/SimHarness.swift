import Foundation
import WABinary
import WAClient
import WASim
import XCTest

/// Starts a simulator on loopback (port 0) and builds clients pointed at it with fast timers.
struct SimHarness {
    let sim: WASim

    static func start(_ tweak: (inout WASim.Configuration) -> Void = { _ in }) async throws -> SimHarness {
        var configuration = WASim.Configuration()
        tweak(&configuration)
        let sim = try WASim(configuration: configuration)
        try await sim.start()
        return SimHarness(sim: sim)
    }

    func configuration(_ tweak: (inout WAClientConfiguration) -> Void = { _ in }) async -> WAClientConfiguration {
        var configuration = WAClientConfiguration.local(endpoint: await sim.endpoint, noiseRoot: sim.rootPublicKey)
        configuration.keepalive = KeepalivePolicy(minInterval: .seconds(5), maxInterval: .seconds(5), timeout: .seconds(5))
        tweak(&configuration)
        return configuration
    }

    func client(store: InMemoryDeviceStore = InMemoryDeviceStore(), _ tweak: (inout WAClientConfiguration) -> Void = { _ in }) async -> WAClient {
        WAClient(store: store, configuration: await configuration(tweak))
    }

    /// Runs a QR login: takes the first QR from the client's stream and lets `phone` scan it.
    @discardableResult
    func qrLogin(_ client: WAClient, phone: String) async throws -> LoginInfo {
        await sim.createPhone(number: phone)
        let stream = await client.loginWithQR()
        var scanned = false
        for try await event in stream {
            switch event {
            case .code(let code):
                if !scanned {
                    scanned = true
                    _ = try await sim.scanQR(phone: phone, qr: code.text)
                }
            case .success(let info):
                return info
            }
        }
        throw WAClientError(.invalidState, "QR stream ended without success")
    }

    func shutdown(_ clients: WAClient...) async {
        for client in clients { await client.stop() }
        await sim.shutdown()
    }
}

/// Fails the test instead of hanging when `body` takes longer than `seconds`.
func within<T: Sendable>(_ seconds: Double, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .seconds(seconds))
            throw WAClientError(.timeout, "test step took longer than \(seconds) s")
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}

/// Polls until `condition` holds or `seconds` pass.
func eventually(_ seconds: Double = 5, _ what: String = "condition", _ condition: @escaping @Sendable () async -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while ContinuousClock.now < deadline {
        if await condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    XCTFail("\(what) did not happen within \(seconds) s")
    throw WAClientError(.timeout, what)
}
