import Foundation
import NIOCore
import WABinary
import WAClient
import WACrypto
import WAProto
import WASim
import XCTest

/// Clients that misbehave are cut off alone; a well-behaved client on the same simulator stays connected.
final class HostileClientTests: XCTestCase {
    private func startSim() async throws -> WASim {
        var configuration = WASim.Configuration()
        configuration.limits.handshakeTimeout = .milliseconds(500)
        configuration.limits.maxFrameSize = 256 << 10
        let sim = try WASim(configuration: configuration)
        try await sim.start()
        return sim
    }

    private func loggedInClient(_ sim: WASim, phone: String) async throws -> (WAClient, JID) {
        await sim.createPhone(number: phone)
        let client = WAClient(
            store: InMemoryDeviceStore(),
            configuration: .local(endpoint: await sim.endpoint, noiseRoot: sim.rootPublicKey))
        for try await event in await client.loginWithQR() {
            switch event {
            case .code(let code): _ = try await sim.scanQR(phone: phone, qr: code.text)
            case .success(let info): return (client, info.jid)
            }
        }
        throw SimTestError.noLogin
    }

    enum SimTestError: Error { case noLogin, notClosed(String) }

    /// Opens a raw WebSocket, sends `messages`, and expects the simulator to close it within `seconds`.
    private func expectDisconnected(_ sim: WASim, _ name: String, seconds: Double = 3, sending messages: [Data]) async throws {
        let socket = try await WebSocketTransport.connect(url: await sim.endpoint, origin: "https://web.whatsapp.com", maxFrameSize: 8 << 20)
        for message in messages { socket.send(message) }
        let closed = try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                for await _ in socket.inbound {}
                return true
            }
            group.addTask {
                try await Task.sleep(for: .seconds(seconds))
                return false
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
        socket.close()
        if !closed { throw SimTestError.notClosed(name) }
    }

    func testHostileClientsAreDisconnectedWhileOthersStay() async throws {
        let sim = try await startSim()
        let (client, jid) = try await loggedInClient(sim, phone: "15557770001")

        // Garbage instead of the WA header.
        try await expectDisconnected(sim, "garbage", sending: [Data("GET / HTTP/1.1\r\n\r\n".utf8)])
        // The header, then a frame that is not a HandshakeMessage.
        try await expectDisconnected(sim, "wrong handshake", sending: [FrameCodec.header + (try FrameCodec.frame(Data(repeating: 0xEE, count: 40)))])
        // A ClientHello whose ephemeral key is the wrong size.
        var hello = WAWa6_HandshakeMessage()
        hello.clientHello.ephemeral = Data(repeating: 1, count: 7)
        try await expectDisconnected(sim, "short key", sending: [FrameCodec.header + (try FrameCodec.frame(try hello.serializedBytes() as Data))])
        // A Noise frame announcing 16 MiB: refused from its 3 length bytes.
        try await expectDisconnected(sim, "oversized noise frame", sending: [FrameCodec.header + Data([0xFF, 0xFF, 0xFF])])
        // A WebSocket message larger than the simulator accepts.
        try await expectDisconnected(sim, "oversized websocket message", sending: [Data(repeating: 0x57, count: 1 << 20)])
        // A client that never finishes the handshake.
        try await expectDisconnected(sim, "silent", sending: [FrameCodec.header])
        // A flood of garbage messages.
        try await expectDisconnected(sim, "flood", sending: (0..<2000).map { _ in Data(repeating: 0x00, count: 512) })

        // The well-behaved client never noticed.
        let state = await client.state
        XCTAssertEqual(state, .connected)
        let transitions = await client.recentTransitions
        XCTAssertEqual(transitions.filter { $0.to == .reconnecting && $0.reason != .restartRequired }.count, 0)
        _ = try await client.sendIQ(Node("iq", [
            Attribute("to", .jid(.serverJID)), Attribute("type", "get"), Attribute("xmlns", "w:p"),
        ], content: .nodes([Node("ping")])))
        let online = await sim.isOnline(jid)
        XCTAssertTrue(online)
        // Every hostile connection is gone from the simulator's table.
        let deadline = ContinuousClock.now + .seconds(3)
        while await sim.connectionCount > 1, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        let count = await sim.connectionCount
        XCTAssertEqual(count, 1)
        await client.stop()
        await sim.shutdown()
    }

    func testUnknownDeviceGetsFailure401() async throws {
        let sim = try await startSim()
        var record = DeviceRecord.generate()
        record.jid = try JID(parsing: "15557770002:4@s.whatsapp.net")
        record.account = WAAdv_ADVSignedDeviceIdentity()
        let store = InMemoryDeviceStore(record)
        let client = WAClient(store: store, configuration: .local(endpoint: await sim.endpoint, noiseRoot: sim.rootPublicKey))
        try await client.start()
        try await client.waitForState(.loggedOut, timeout: .seconds(5))
        let last = await client.recentTransitions.last
        XCTAssertEqual(last?.reason, .failure(LoginFailure(reason: 401)))
        let wiped = try await store.loadDevice()
        XCTAssertNil(wiped)
        await sim.shutdown()
    }

    func testScanRefusesForeignOrStaleQR() async throws {
        let sim = try await startSim()
        await sim.createPhone(number: "15557770003")
        // A well-formed QR whose ref no connection holds.
        let stranger = Pairing.qrString(ref: "2@nobody", device: DeviceRecord.generate())
        do {
            _ = try await sim.scanQR(phone: "15557770003", qr: stranger)
            XCTFail("unknown ref accepted")
        } catch let error as SimError {
            XCTAssertEqual(error.code, "sim.unknown_ref")
        }
        do {
            _ = try await sim.scanQR(phone: "15557770003", qr: "garbage")
            XCTFail("garbage accepted")
        } catch let error as SimError {
            XCTAssertEqual(error.code, "sim.bad_qr")
        }
        do {
            _ = try await sim.scanQR(phone: "15550000000", qr: stranger)
            XCTFail("unknown phone accepted")
        } catch let error as SimError {
            XCTAssertEqual(error.code, "sim.unknown_phone")
        }
        // A real QR with its keys swapped for another device's is refused too.
        let client = WAClient(store: InMemoryDeviceStore(), configuration: .local(endpoint: await sim.endpoint, noiseRoot: sim.rootPublicKey))
        var forged: String?
        for try await event in await client.loginWithQR() {
            if case .code(let code) = event {
                let ref = try Pairing.parseQR(code.text).ref
                forged = Pairing.qrString(ref: ref, device: DeviceRecord.generate())
                break
            }
        }
        do {
            _ = try await sim.scanQR(phone: "15557770003", qr: try XCTUnwrap(forged))
            XCTFail("forged QR accepted")
        } catch let error as SimError {
            XCTAssertEqual(error.code, "sim.bad_qr")
        }
        let linked = await sim.linkedDevices(of: "15557770003")
        XCTAssertEqual(linked, [])
        await client.stop()
        await sim.shutdown()
    }

    func testExpiredRefIsRefused() async throws {
        var configuration = WASim.Configuration()
        configuration.limits.firstRefLifetime = .milliseconds(100)
        configuration.limits.laterRefLifetime = .zero
        let sim = try WASim(configuration: configuration)
        try await sim.start()
        await sim.createPhone(number: "15557770004")
        let client = WAClient(store: InMemoryDeviceStore(), configuration: .local(endpoint: await sim.endpoint, noiseRoot: sim.rootPublicKey))
        var qr: String?
        for try await event in await client.loginWithQR() {
            if case .code(let code) = event { qr = code.text; break }
        }
        try await Task.sleep(for: .milliseconds(200))
        do {
            _ = try await sim.scanQR(phone: "15557770004", qr: try XCTUnwrap(qr))
            XCTFail("expired ref accepted")
        } catch let error as SimError {
            XCTAssertEqual(error.code, "sim.ref_expired")
        }
        await client.stop()
        await sim.shutdown()
    }
}
