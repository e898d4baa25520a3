import Foundation
import WAClient
import XCTest
@testable import BridgeStore

final class LRUTests: XCTestCase {
    /// Per-device SQLite files this process has open now, read from /proc/self/fd.
    private func openDeviceFiles(under dir: URL) -> Int {
        guard let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return -1 }
        var count = 0
        for fd in fds {
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)") else { continue }
            if target.hasPrefix(dir.path), target.hasSuffix("/session.sqlite") || target.hasSuffix("/history.sqlite") {
                count += 1
            }
        }
        return count
    }

    func testTwoHundredDevicesWithSixteenOpen() async throws {
        let dir = try makeTemporaryDirectory(self)
        let store = try openStore(dir, maxOpen: 16)
        var records: [DeviceID: DeviceRecord] = [:]
        for i in 0..<200 {
            let id = try DeviceID("dev-\(i)")
            try await store.createDevice(id: id)
            let device = try await store.device(id)
            let record = DeviceRecord.generate()
            try await device.keys.saveDevice(record)
            try await device.data.appendEvent(eventID: "ev-\(i)", routingKey: "\(id).x", payload: Data("\(i)".utf8))
            records[id] = record
            XCTAssertLessThanOrEqual(store.openDatabaseCount, 16)
            if i % 25 == 0 {
                let onDisk = openDeviceFiles(under: dir)
                XCTAssertLessThanOrEqual(onDisk, 16, "file descriptors of device databases")
                XCTAssertGreaterThan(onDisk, 0)
            }
        }
        XCTAssertLessThanOrEqual(store.peakOpenDatabaseCount, 16)
        XCTAssertLessThanOrEqual(openDeviceFiles(under: dir), 16)

        // Every device still works, in a different order (everything reopens).
        for (i, (id, record)) in records.sorted(by: { $0.key > $1.key }).enumerated() {
            let device = try await store.device(id)
            let loaded = try await device.keys.loadDevice()
            XCTAssertEqual(loaded?.identityKey.publicKey, record.identityKey.publicKey, "\(id)")
            let events = try await device.data.peekEvents()
            XCTAssertEqual(events.map(\.routingKey), ["\(id).x"])
            if i % 50 == 0 { XCTAssertLessThanOrEqual(openDeviceFiles(under: dir), 16) }
        }
        XCTAssertLessThanOrEqual(store.peakOpenDatabaseCount, 16)
        XCTAssertGreaterThan(store.databaseOpenCount, 400, "databases were closed and reopened")
        let v1 = try await store.listDevices().count
        XCTAssertEqual(v1, 200)
    }

    func testConcurrentUseWithASmallCache() async throws {
        let dir = try makeTemporaryDirectory(self)
        let store = try openStore(dir, maxOpen: 4)
        let ids = try (0..<20).map { try DeviceID("c\($0)") }
        for id in ids { try await store.createDevice(id: id) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for id in ids {
                group.addTask {
                    let device = try await store.device(id)
                    for n in 0..<10 {
                        try await device.data.appendEvent(eventID: "\(id)-\(n)", routingKey: id.rawValue, payload: Data())
                    }
                }
            }
            try await group.waitForAll()
        }
        for id in ids {
            let events = try await store.device(id).data.peekEvents()
            XCTAssertEqual(events.map(\.eventID), (0..<10).map { "\(id)-\($0)" })
        }
        XCTAssertLessThanOrEqual(store.openDatabaseCount, 4)
    }
}
