import Foundation
import WAClient
import WACrypto
import WASignal
import XCTest
@testable import BridgeStore

/// Leases and fences on SQLite, with two `BridgeStore`s on one folder standing for two
/// worker processes (each has its own SQLite connections to the shared files).
final class LeaseStoreTests: XCTestCase {
    private func twoWorkers() throws -> (BridgeStore, BridgeStore) {
        let dir = try makeTemporaryDirectory(self)
        return (try openStore(dir), try openStore(dir))
    }

    func testOneOwnerAtATimeAndTheGenerationGrowsOnEveryHandOver() async throws {
        let (a, b) = try twoWorkers()
        let id = try await a.createDevice(id: DeviceID("d1")).id

        let first = try await a.leases.acquire(id, owner: "A", ttl: 30)
        XCTAssertEqual(first?.owner, "A")
        XCTAssertEqual(first?.generation, 1)
        let refused = try await b.leases.acquire(id, owner: "B", ttl: 30)
        XCTAssertNil(refused, "a live lease of A must not be handed to B")
        let again = try await a.leases.acquire(id, owner: "A", ttl: 30)
        XCTAssertEqual(again?.generation, 1, "the holder's own acquire extends, it does not hand over")

        try await a.leases.release(try XCTUnwrap(again))
        let taken = try await b.leases.acquire(id, owner: "B", ttl: 30)
        XCTAssertEqual(taken?.generation, 2)
        // A release of the old lease after the hand-over changes nothing.
        try await a.leases.release(try XCTUnwrap(first))
        let held = try await a.leases.acquire(id, owner: "A", ttl: 30)
        XCTAssertNil(held)
        let v1 = try await a.leases.leases().map(\.owner)
        XCTAssertEqual(v1, ["B"])
    }

    func testAnExpiredLeaseIsTakenOverAndItsOwnerLosesItOnRenew() async throws {
        let (a, b) = try twoWorkers()
        let id = try await a.createDevice(id: DeviceID("d1")).id
        let other = try await a.createDevice(id: DeviceID("d2")).id
        _ = try await a.leases.acquire(id, owner: "A", ttl: 0.2)
        _ = try await a.leases.acquire(other, owner: "A", ttl: 30)
        try await Task.sleep(for: .milliseconds(300))

        let taken = try await b.leases.acquire(id, owner: "B", ttl: 30)
        XCTAssertEqual(taken?.generation, 2)
        let kept = try await a.leases.renew(owner: "A", ttl: 30)
        XCTAssertEqual(kept.map(\.device), [other], "A keeps only the lease nobody took")
        let v2 = try await b.leases.renew(owner: "B", ttl: 30)
        XCTAssertEqual(v2.map(\.device), [id])
    }

    func testRacingWorkersGetEachDeviceOnce() async throws {
        let (a, b) = try twoWorkers()
        var ids: [DeviceID] = []
        for i in 0..<20 { ids.append(try await a.createDevice(id: DeviceID("d\(i)")).id) }
        let ownedIDs = ids
        async let byA = Self.takeAll(ownedIDs, store: a, owner: "A")
        async let byB = Self.takeAll(ownedIDs, store: b, owner: "B")
        let (gotA, gotB) = try await (byA, byB)
        XCTAssertTrue(gotA.isDisjoint(with: gotB), "a device leased to both workers: \(gotA.intersection(gotB))")
        XCTAssertEqual(gotA.union(gotB), Set(ids))
        let rows = try await a.leases.leases()
        XCTAssertEqual(rows.count, 20)
        XCTAssertEqual(Set(rows.filter { $0.owner == "A" }.map(\.device)), gotA)
    }

    private static func takeAll(_ ids: [DeviceID], store: BridgeStore, owner: String) async throws -> Set<DeviceID> {
        var got: Set<DeviceID> = []
        for id in ids.shuffled() where try await store.leases.acquire(id, owner: owner, ttl: 30) != nil { got.insert(id) }
        return got
    }

    func testHeartbeatsListLiveWorkersAndForgetDeadOnes() async throws {
        let (a, b) = try twoWorkers()
        try await a.leases.heartbeat(worker: "A", ttl: 30, draining: false)
        try await b.leases.heartbeat(worker: "B", ttl: 0.1, draining: false)
        try await b.leases.heartbeat(worker: "C", ttl: 30, draining: true)
        try await Task.sleep(for: .milliseconds(200))
        let live = try await a.leases.liveWorkers(forgetAfter: 3600)
        XCTAssertEqual(live.map(\.id), ["A", "C"])
        XCTAssertEqual(live.map(\.draining), [false, true])
        _ = try await a.leases.liveWorkers(forgetAfter: 0)
        try await b.leases.heartbeat(worker: "B", ttl: 30, draining: false)
        let v3 = try await a.leases.liveWorkers(forgetAfter: 3600).map(\.id)
        XCTAssertEqual(v3, ["A", "B", "C"])
    }

    func testADeletedDeviceTakesItsLeaseAlong() async throws {
        let (a, _) = try twoWorkers()
        let id = try await a.createDevice(id: DeviceID("d1")).id
        _ = try await a.leases.acquire(id, owner: "A", ttl: 30)
        try await a.deleteDevice(id)
        let v4 = try await a.leases.leases()
        XCTAssertEqual(v4, [])
        await assertStoreError(.notFound) { try await a.leases.acquire(id, owner: "A", ttl: 30) }
    }

    // MARK: Fencing

    func testAWriterBehindTheFenceIsRefusedAndWritesNothing() async throws {
        let (a, b) = try twoWorkers()
        let id = try await a.createDevice(id: DeviceID("d1")).id
        let old = try await a.device(id, generation: 1)
        try await old.keys.saveDevice(DeviceRecord.generate())
        try await old.keys.storePreKey(PreKeyRecord(id: 1, keyPair: .generate()))

        // Worker B takes the device over: its fence goes to 2 before it uses the keys.
        try await b.raiseFence(id, to: 2)
        let new = try await b.device(id, generation: 2)
        await assertStoreError(.fenced) { try await old.keys.storePreKey(PreKeyRecord(id: 2, keyPair: .generate())) }
        await assertStoreError(.fenced) { try await old.keys.removePreKey(id: 1) }
        await assertStoreError(.fenced) {
            try await old.keys.storeSession(SessionRecord(), for: SignalAddress(name: "123", deviceID: 0))
        }
        let afterRefusals = try await new.keys.preKeyCount()
        XCTAssertEqual(afterRefusals, 1, "a refused write must change nothing")
        let v5 = try await new.keys.hasSession(for: SignalAddress(name: "123", deviceID: 0))
        XCTAssertFalse(v5)
        // Reads stay open to the old handle; the new owner writes.
        let v6 = try await old.keys.loadPreKey(id: 1)
        XCTAssertNotNil(v6)
        try await new.keys.storePreKey(PreKeyRecord(id: 2, keyPair: .generate()))
        let v7 = try await new.keys.preKeyCount()
        XCTAssertEqual(v7, 2)

        // The fence never goes down, and an unfenced handle (tools) is not checked.
        try await a.raiseFence(id, to: 1)
        let v8 = try await a.fence(id)
        XCTAssertEqual(v8, 2)
        await assertStoreError(.fenced) { try await old.keys.storePreKey(PreKeyRecord(id: 3, keyPair: .generate())) }
        try await a.device(id).keys.storePreKey(PreKeyRecord(id: 3, keyPair: .generate()))
        let v9 = try await new.keys.preKeyCount()
        XCTAssertEqual(v9, 3)
    }
}
