import Foundation
import WABinary
import WAClient
import WASim
import XCTest

/// `<notification type=devices>`: the device-list cache follows a peer's
/// linked and unlinked devices without waiting for a phash mismatch.
final class DeviceNotificationTests: XCTestCase {
    private func notification(_ kind: String, user: JID, device: JID, hash: String?) -> Node {
        var change = [Attribute]()
        if let hash { change.append(Attribute("device_hash", .string(hash))) }
        return Node("notification", [Attribute("from", .jid(user)), Attribute("type", "devices"), Attribute("id", "n1")],
                    content: .nodes([Node(kind, change, content: .nodes([Node("device", [Attribute("jid", .jid(device))])]))]))
    }

    func testTheCacheAppliesAChangeOnlyWhenTheHashMatches() throws {
        let peer = JID(user: "15550300001", server: JID.userServer)
        let phone = peer, companion = JID(user: peer.user, device: 3, server: JID.userServer)
        var cache = DeviceListCache()
        let unknown = try DeviceListNotification(parsing: try wire(notification("add", user: peer, device: companion, hash: "2:x")))
        XCTAssertEqual(cache.apply(unknown), .notCached)

        cache.store(UsyncNodes.UserDevices(user: peer, devices: [phone]))
        let added = try DeviceListNotification(parsing: try wire(
            notification("add", user: peer, device: companion, hash: ParticipantHash.v2([phone, companion]))))
        XCTAssertEqual(cache.apply(added), .updated)
        XCTAssertEqual(cache.devices(of: peer)?.devices, [phone, companion])

        let removed = try DeviceListNotification(parsing: try wire(
            notification("remove", user: peer, device: companion, hash: ParticipantHash.v2([phone]))))
        XCTAssertEqual(cache.apply(removed), .updated)
        XCTAssertEqual(cache.devices(of: peer)?.devices, [phone])

        // A hash that does not match what we would hold: our list is wrong, drop it.
        let other = JID(user: peer.user, device: 7, server: JID.userServer)
        let mismatch = try DeviceListNotification(parsing: try wire(
            notification("add", user: peer, device: other, hash: ParticipantHash.v2([phone, companion, other]))))
        XCTAssertEqual(cache.apply(mismatch), .dropped)
        XCTAssertNil(cache.devices(of: peer))

        // Someone else's device in the notification is refused (dropped, never added).
        cache.store(UsyncNodes.UserDevices(user: peer, devices: [phone]))
        let stranger = JID(user: "15550300009", device: 1, server: JID.userServer)
        let foreign = try DeviceListNotification(parsing: try wire(
            notification("add", user: peer, device: stranger, hash: ParticipantHash.v2([phone, stranger]))))
        XCTAssertEqual(cache.apply(foreign), .dropped)
        XCTAssertNil(cache.devices(of: peer))
    }

    func testOwnListIsReplacedOnlyWhenItsHashMatches() throws {
        let me = JID(user: "15550300002", server: JID.userServer)
        let list = [me, JID(user: me.user, device: 4, server: JID.userServer)]
        func sync(_ devices: [JID], hash: String) throws -> OwnDevicesNotification {
            try XCTUnwrap(OwnDevicesNotification(parsing: try wire(Node("notification", [Attribute("type", "account_sync")], content: .nodes([
                Node("devices", [Attribute("dhash", .string(hash))], content: .nodes(devices.map { Node("device", [Attribute("jid", .jid($0))]) })),
            ])))))
        }
        var cache = DeviceListCache()
        XCTAssertEqual(cache.apply(own: try sync(list, hash: ParticipantHash.v2(list)), user: me), .notCached)
        cache.store(UsyncNodes.UserDevices(user: me, devices: [me]))
        XCTAssertEqual(cache.apply(own: try sync(list, hash: ParticipantHash.v2(list)), user: me), .updated)
        XCTAssertEqual(cache.devices(of: me)?.devices, list)
        XCTAssertEqual(cache.apply(own: try sync(list, hash: ParticipantHash.v2([me])), user: me), .dropped)
        XCTAssertNil(cache.devices(of: me))
        XCTAssertNil(OwnDevicesNotification(parsing: Node("notification", [Attribute("type", "account_sync")])), "no <devices>: another item")
    }

    func testOurOwnNewDeviceArrivesAsAccountSync() async throws {
        let harness = try await SimHarness.start { $0.announceDeviceChanges = true }
        let sim = harness.sim
        let store = InMemoryDeviceStore()
        let feature = MessagingFeature(store: store)
        let client = WAClient(store: store, configuration: await harness.configuration(), features: [feature])
        let me = "15550100111", peer = "15550100112"
        let info = try await within(20) { try await harness.qrLogin(client, phone: me) }
        await sim.createPhone(number: peer)
        let first = try await client.sendText(to: user(peer), text: "before")
        XCTAssertEqual(first.deviceCount, 2, "the peer's phone and our own phone")

        // We link a second companion: our first one learns it from account_sync.
        let otherStore = InMemoryDeviceStore()
        let other = await harness.messagingClient(store: otherStore)
        let otherLog = EventLog.watching(other)
        let otherInfo = try await within(20) { try await harness.qrLogin(other, phone: me) }
        try await eventually(10, "own list updated") {
            await feature.cachedDevices(of: user(me)).map(Set.init) == [user(me), info.jid, otherInfo.jid]
        }
        try await eventually(5, "notification acked") { await sim.outboxCount(info.jid) == 0 }
        try await eventually(10, "other device prekeys") { await sim.uploadedPreKeyCount(otherInfo.jid) == 812 }
        let copy = try await client.sendText(to: user(peer), text: "copied to our new device")
        XCTAssertEqual(copy.deviceCount, 3, "the peer's phone, our phone, our new companion")
        try await eventually(5, "our new device got the copy") {
            await otherLog.received.contains { $0.id == copy.id && $0.isFromMe }
        }
        await harness.shutdown(client, other)
    }

    func testALinkedAndAnUnlinkedPeerDeviceUpdateTheCacheAndAreAcked() async throws {
        let harness = try await SimHarness.start { $0.announceDeviceChanges = true }
        let sim = harness.sim
        let store = InMemoryDeviceStore()
        let feature = MessagingFeature(store: store)
        let client = WAClient(store: store, configuration: await harness.configuration(), features: [feature])
        let me = "15550100101", peer = "15550100102"
        let info = try await within(20) { try await harness.qrLogin(client, phone: me) }
        await sim.createPhone(number: peer)
        let first = try await client.sendText(to: user(peer), text: "to the phone only")
        XCTAssertEqual(first.deviceCount, 2, "the peer's phone and our own phone")

        // The peer links a device: the server tells us, the cached list gains it at once.
        let peerStore = InMemoryDeviceStore()
        let peerClient = await harness.messagingClient(store: peerStore)
        let peerLog = EventLog.watching(peerClient)
        let peerInfo = try await within(20) { try await harness.qrLogin(peerClient, phone: peer) }
        try await eventually(10, "cache updated") { await feature.cachedDevices(of: user(peer))?.contains(peerInfo.jid) == true }
        try await eventually(5, "notification acked") { await sim.outboxCount(info.jid) == 0 }
        try await eventually(10, "peer device prekeys") { await sim.uploadedPreKeyCount(peerInfo.jid) == 812 }
        let fresh = try await client.sendText(to: user(peer), text: "reaches the new device")
        XCTAssertEqual(fresh.deviceCount, 3, "no stale send first: the notification updated the list")
        try await eventually(5, "the new device decrypted it") { await peerLog.received.contains { $0.id == fresh.id } }

        // The peer unlinks it: gone from the list, the next send skips it.
        await sim.unlink(device: peerInfo.jid)
        try await eventually(10, "cache updated") { await feature.cachedDevices(of: user(peer)) == [user(peer)] }
        let after = try await client.sendText(to: user(peer), text: "phone only again")
        XCTAssertEqual(after.deviceCount, 2)
        await harness.shutdown(client, peerClient)
    }
}
