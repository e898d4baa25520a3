import Foundation
import WAClient
import WACrypto
import WASignal
import XCTest
@testable import BridgeStore

// Leases on each backend, with two `BridgeStore`s on one backing standing for two workers
// (each with its own connections: SQLite files or a PostgreSQL pool).
extension StoreConformanceCase {
    private func twoWorkers() async throws -> (BridgeStore, BridgeStore) {
        let backend = try await backend()
        return (try await backend.open(masterKey: nil), try await backend.open(masterKey: nil))
    }

    func checkLeaseOneOwnerAtATime() async throws {
        let (a, b) = try await twoWorkers()
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
        try await a.leases.release(try XCTUnwrap(first))  // a stale release changes nothing
        let held = try await a.leases.acquire(id, owner: "A", ttl: 30)
        XCTAssertNil(held)
        let owners = try await a.leases.leases().map(\.owner)
        XCTAssertEqual(owners, ["B"])
        await assertStoreError(.notFound) { try await a.leases.acquire(try DeviceID("nobody"), owner: "A", ttl: 30) }
    }

    func checkLeaseExpiryAndRenew() async throws {
        let (a, b) = try await twoWorkers()
        let id = try await a.createDevice(id: DeviceID("d1")).id
        let other = try await a.createDevice(id: DeviceID("d2")).id
        _ = try await a.leases.acquire(id, owner: "A", ttl: 0.2)
        _ = try await a.leases.acquire(other, owner: "A", ttl: 30)
        try await Task.sleep(for: .milliseconds(300))
        let taken = try await b.leases.acquire(id, owner: "B", ttl: 30)
        XCTAssertEqual(taken?.generation, 2)
        let kept = try await a.leases.renew(owner: "A", ttl: 30).map(\.device)
        XCTAssertEqual(kept, [other], "A keeps only the lease nobody took")
        let bKept = try await b.leases.renew(owner: "B", ttl: 30).map(\.device)
        XCTAssertEqual(bKept, [id])
    }

    /// A take-over records the previous owner's link as gone, in the acquiring transaction; the
    /// holder extending its own lease, or a logged-out device, keeps its state.
    func checkATakeOverRecordsTheDeviceDisconnected() async throws {
        let (a, b) = try await twoWorkers()
        let id = try await a.createDevice(id: DeviceID("d1")).id
        let out = try await a.createDevice(id: DeviceID("d2")).id
        _ = try await a.leases.acquire(id, owner: "A", ttl: 0.2)
        _ = try await a.leases.acquire(out, owner: "A", ttl: 0.2)
        try await a.registry.updateState(id, to: .connected)
        try await a.registry.updateState(out, to: .loggedOut)
        _ = try await a.leases.acquire(id, owner: "A", ttl: 0.2)
        let extended = try await b.registry.device(id).state
        XCTAssertEqual(extended, .connected, "the holder's own acquire is no take-over")
        try await Task.sleep(for: .milliseconds(300))
        let taken = try await b.leases.acquire(id, owner: "B", ttl: 30)
        XCTAssertEqual(taken?.generation, 2)
        let state = try await b.registry.device(id).state
        XCTAssertEqual(state, .disconnected, "the new owner must not be reported connected before it is")
        _ = try await b.leases.acquire(out, owner: "B", ttl: 30)
        let loggedOut = try await b.registry.device(out).state
        XCTAssertEqual(loggedOut, .loggedOut)
    }

    func checkLeaseRacingWorkersGetEachDeviceOnce() async throws {
        let (a, b) = try await twoWorkers()
        var ids: [DeviceID] = []
        for i in 0..<20 { ids.append(try await a.createDevice(id: DeviceID("d\(i)")).id) }
        let all = ids
        async let byA = Self.takeAll(all, store: a, owner: "A")
        async let byB = Self.takeAll(all, store: b, owner: "B")
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

    func checkHeartbeats() async throws {
        let (a, b) = try await twoWorkers()
        try await a.leases.heartbeat(worker: "A", ttl: 30, draining: false)
        try await b.leases.heartbeat(worker: "B", ttl: 0.1, draining: false)
        try await b.leases.heartbeat(worker: "C", ttl: 30, draining: true)
        try await Task.sleep(for: .milliseconds(200))
        let live = try await a.leases.liveWorkers(forgetAfter: 3600)
        XCTAssertEqual(live.map(\.id), ["A", "C"])
        XCTAssertEqual(live.map(\.draining), [false, true])
        _ = try await a.leases.liveWorkers(forgetAfter: 0)
        try await b.leases.heartbeat(worker: "B", ttl: 30, draining: false)
        let again = try await a.leases.liveWorkers(forgetAfter: 3600).map(\.id)
        XCTAssertEqual(again, ["A", "B", "C"])
        let now = try await a.leases.now()
        XCTAssertEqual(now.timeIntervalSince1970, Date().timeIntervalSince1970, accuracy: 60)
    }

    func checkADeletedDeviceTakesItsLeaseAlong() async throws {
        let (a, _) = try await twoWorkers()
        let id = try await a.createDevice(id: DeviceID("d1")).id
        _ = try await a.leases.acquire(id, owner: "A", ttl: 30)
        try await a.deleteDevice(id)
        let rows = try await a.leases.leases()
        XCTAssertEqual(rows, [])
        await assertStoreError(.notFound) { try await a.leases.acquire(id, owner: "A", ttl: 30) }
    }

    /// Another worker raises the fence: the old owner's key writes are refused, its reads are not.
    func checkFenceAcrossWorkers() async throws {
        let (a, b) = try await twoWorkers()
        let id = try await a.createDevice(id: DeviceID("d1")).id
        let old = try await a.device(id, generation: 1)
        try await old.keys.saveDevice(DeviceRecord.generate())
        try await old.keys.storePreKey(PreKeyRecord(id: 1, keyPair: .generate()))
        try await b.raiseFence(id, to: 2)
        let new = try await b.device(id, generation: 2)
        await assertStoreError(.fenced) { try await old.keys.storePreKey(PreKeyRecord(id: 2, keyPair: .generate())) }
        await assertStoreError(.fenced) { try await old.keys.removePreKey(id: 1) }
        await assertStoreError(.fenced) { try await old.keys.commit(SignalStoreChanges()) }
        let count = try await new.keys.preKeyCount()
        XCTAssertEqual(count, 1, "a refused write must change nothing")
        let read = try await old.keys.loadPreKey(id: 1)
        XCTAssertNotNil(read)
        try await new.keys.storePreKey(PreKeyRecord(id: 2, keyPair: .generate()))
        try await a.device(id).keys.storePreKey(PreKeyRecord(id: 3, keyPair: .generate()))  // unfenced handle (tools)
        let after = try await new.keys.preKeyCount()
        XCTAssertEqual(after, 3)
    }

    /// Old-generation writers racing a raise: once `raiseFence` returned, none of their writes
    /// lands any more (a write that passed the check before the raise committed before it).
    func checkNoFencedWriteLandsAfterTheRaise() async throws {
        let (a, b) = try await twoWorkers()
        let id = try await a.createDevice(id: DeviceID("race")).id
        let old = try await a.device(id, generation: 1).keys
        let writers = (0..<4).map { w in
            Task {
                var refused = 0
                for i in 0..<40 {
                    do { try await old.storePreKey(PreKeyRecord(id: UInt32(w * 1000 + i + 1), keyPair: .generate())) } catch {
                        if (error as? StoreError)?.code == .fenced { refused += 1 } else { throw error }
                    }
                }
                return refused
            }
        }
        try await Task.sleep(for: .milliseconds(20))
        try await b.raiseFence(id, to: 2)
        let atRaise = try await b.device(id).keys.preKeyCount()
        var refused = 0
        for writer in writers { refused += try await writer.value }
        let atEnd = try await b.device(id).keys.preKeyCount()
        XCTAssertEqual(atEnd, atRaise, "a generation-1 write landed after the fence was raised")
        XCTAssertEqual(atEnd + refused, 160, "every write either landed before the raise or was refused")
    }
}
