import Foundation
import WABinary
import WAClient
import WACrypto
import WAProto
import WASim
import XCTest

/// A bounded version of the scale run (`sim-scale-bench` does 10,000 and measures):
/// 200 provisioned devices log in at once, the simulator counts 200 live
/// connections and all 200 devices online, and when the clients stop and the
/// simulator shuts down the table empties.
final class ManyConnectionsTests: XCTestCase {
    func testTwoHundredLoginsAndCleanShutdown() async throws {
        let count = 200
        let sim = try WASim(configuration: WASim.Configuration())
        try await sim.start()
        var clients: [WAClient] = []
        var jids: [JID] = []
        var configuration = WAClientConfiguration.local(endpoint: await sim.endpoint, noiseRoot: sim.rootPublicKey)
        configuration.connectTimeout = .seconds(30)
        for index in 0..<count {
            let noise = Curve25519KeyPair.generate(), identity = Curve25519KeyPair.generate()
            let jid = await sim.provisionDevice(
                phone: "1888000\(index / 50)", noiseKey: noise.publicKey, identityKey: identity.publicKey,
                registrationID: UInt32(index + 1))
            jids.append(jid)
            let record = DeviceRecord(
                noiseKey: noise, identityKey: identity, registrationID: UInt32(index + 1),
                signedPreKey: try SignedPreKey.generate(id: 1, signedBy: identity), advSecret: Data(count: 32),
                account: WAAdv_ADVSignedDeviceIdentity(), jid: jid)
            clients.append(WAClient(store: InMemoryDeviceStore(record), configuration: configuration))
        }
        XCTAssertEqual(Set(jids).count, count, "each provisioned device has its own JID")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for client in clients {
                group.addTask {
                    try await client.start()
                    try await client.waitForState(.connected, timeout: .seconds(60))
                }
            }
            try await group.waitForAll()
        }
        let live = await sim.connectionCount
        XCTAssertEqual(live, count)
        var online = 0
        for jid in jids where await sim.isOnline(jid) { online += 1 }
        XCTAssertEqual(online, count)
        // A ping round trip on one of them still works under the load.
        let pong = try await clients[count / 2].sendIQ(Node("iq", attributes: [
            "to": .jid(JID.serverJID), "type": "get", "xmlns": "w:p",
        ], children: [Node("ping")]))
        XCTAssertEqual(pong.string("type"), "result")

        for client in clients { await client.stop() }
        // The clients closed their links: the simulator's table empties (30 s safety bound).
        let deadline = ContinuousClock.now + .seconds(30)
        while await sim.connectionCount > 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        let left = await sim.connectionCount
        XCTAssertEqual(left, 0, "every closed client left the connection table")
        for jid in jids.prefix(5) {
            let stillOnline = await sim.isOnline(jid)
            XCTAssertFalse(stillOnline)
        }
        await sim.shutdown()
    }
}
