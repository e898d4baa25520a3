import Foundation
import WABinary
import WAClient
import WASim
import XCTest

final class UsyncTests: XCTestCase {
    let alice = JID(user: "15550001111", server: JID.userServer)
    let bob = JID(user: "15550002222", server: JID.userServer)

    func testQueryAnswerRoundTrip() throws {
        let query = try wire(try UsyncNodes.deviceQueryIQ(
            id: "u1", sid: "sid-1", users: [alice, JID(user: "15550002222", device: 4, server: JID.userServer)]))
        XCTAssertEqual(query.string("xmlns"), "usync")
        XCTAssertEqual(query.string("type"), "get")
        let usync = try XCTUnwrap(query.child("usync"))
        XCTAssertEqual(usync.string("context"), "message")
        XCTAssertEqual(usync.string("mode"), "query")
        XCTAssertEqual(usync.child(path: "query", "devices")?.string("version"), "2")
        XCTAssertEqual(try ServerUsync.parseQuery(query), [alice, bob], "device JIDs asked as users")

        let bobLID = JID(user: "8123456789", server: JID.lidServer)
        let answer = try wire(ServerUsync.answer(to: query, users: [
            .init(user: alice, devices: [alice, JID(user: alice.user, device: 1, server: JID.userServer)]),
            .init(user: bob, devices: [bob, JID(user: bob.user, device: 4, server: JID.userServer), JID(user: bob.user, device: 9, server: JID.userServer)], lid: bobLID),
        ]))
        XCTAssertEqual(answer.string("id"), "u1")
        XCTAssertEqual(answer.child("usync")?.string("sid"), "sid-1")
        let parsed = try UsyncNodes.parseDeviceAnswer(answer)
        XCTAssertEqual(parsed.count, 2)
        XCTAssertEqual(parsed[0].devices.map(\.device), [0, 1])
        XCTAssertNil(parsed[0].lid)
        XCTAssertEqual(parsed[1].devices.map(\.device), [0, 4, 9])
        XCTAssertEqual(parsed[1].devices[1].description, "15550002222:4@s.whatsapp.net")
        XCTAssertEqual(parsed[1].lid, bobLID)
    }

    func testTooManyDevicesRefused() throws {
        let many = (0..<(UsyncNodes.maxDevicesPerUser + 1)).map { Node("device", attributes: ["id": .string(String($0))]) }
        let answer = try wire(Node("iq", attributes: ["type": "result"], children: [Node("usync", children: [Node("list", children: [
            Node("user", attributes: ["jid": .jid(bob)], children: [Node("devices", children: [Node("device-list", children: many)])]),
        ])])]))
        XCTAssertThrowsError(try UsyncNodes.parseDeviceAnswer(answer)) { XCTAssertEqual(($0 as? WAClientError)?.code, .limitExceeded) }
    }

    func testDeviceListCacheLRUAndTTL() {
        var cache = DeviceListCache(capacity: 2, ttl: 60)
        let t0 = Date(timeIntervalSince1970: 1_000)
        let carol = JID(user: "15550003333", server: JID.userServer)
        cache.store(.init(user: alice, devices: [alice]), now: t0)
        cache.store(.init(user: bob, devices: [bob]), now: t0)
        XCTAssertNotNil(cache.devices(of: alice, now: t0))  // alice is now the most recent
        cache.store(.init(user: carol, devices: [carol]), now: t0)
        XCTAssertEqual(cache.count, 2)
        XCTAssertNil(cache.devices(of: bob, now: t0), "least recently used evicted")
        XCTAssertNotNil(cache.devices(of: JID(user: alice.user, device: 3, server: JID.userServer), now: t0), "looked up by user")
        XCTAssertNil(cache.devices(of: carol, now: t0.addingTimeInterval(61)), "expired after ttl")
        cache.invalidate(alice)
        XCTAssertNil(cache.devices(of: alice, now: t0))
    }
}
