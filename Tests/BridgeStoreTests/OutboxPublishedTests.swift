import Foundation
import XCTest
@testable import BridgeStore

/// The record of published event ids (history v3) and the registry's outbox (registry v2).
final class OutboxPublishedTests: XCTestCase {
    func testConfirmedIdsAreRememberedBoundedAndNotAppendedAgain() async throws {
        let dir = try makeTemporaryDirectory(self)
        let store = try openStore(dir)
        let id = try DeviceID("pub")
        try store.createDevice(id: id)
        let data = try store.device(id).data

        let first = try await data.appendEvent(eventID: "e-0", routingKey: "pub.x", payload: Data("{}".utf8))
        XCTAssertNotNil(first.sequence)
        try await data.deleteEvents(sequences: [try XCTUnwrap(first.sequence)])
        let published = try await data.isPublished(eventID: "e-0")
        XCTAssertTrue(published)
        let again = try await data.appendEvent(eventID: "e-0", routingKey: "pub.x", payload: Data("{}".utf8))
        XCTAssertNil(again.sequence, "a published id is not appended again")
        let count = try await data.outboxCount()
        XCTAssertEqual(count, 0)

        // Past the bound, the oldest ids are forgotten (and may be appended again).
        let n = DeviceDataStore.publishedIDsKept
        var sequences: [Int64] = []
        for i in 1...n {
            let appended = try await data.appendEvent(eventID: "e-\(i)", routingKey: "pub.x", payload: Data())
            sequences.append(try XCTUnwrap(appended.sequence))
        }
        try await data.deleteEvents(sequences: sequences)
        let oldest = try await data.isPublished(eventID: "e-0")
        let newest = try await data.isPublished(eventID: "e-\(n)")
        let boundary = try await data.isPublished(eventID: "e-1")
        XCTAssertFalse(oldest, "the oldest id fell out of the bounded record")
        XCTAssertTrue(boundary)
        XCTAssertTrue(newest)
    }

    func testRegistryOutboxKeepsOrderPerDeviceCountAndDeletes() throws {
        let dir = try makeTemporaryDirectory(self)
        let store = try openStore(dir)
        let r = store.registry
        let now = Date()
        try r.appendEvents([
            RegistryOutboxEvent(eventID: "c-a", deviceID: "a", routingKey: "a.device.created", payload: Data(), createdAt: now),
            RegistryOutboxEvent(eventID: "c-b", deviceID: "b", routingKey: "b.device.created", payload: Data(), createdAt: now),
            RegistryOutboxEvent(eventID: "d-a", deviceID: "a", routingKey: "a.device.deleted", payload: Data(), createdAt: now),
        ])
        // The same id again is skipped.
        try r.appendEvents([RegistryOutboxEvent(eventID: "c-a", deviceID: "a", routingKey: "x", payload: Data(), createdAt: now)])
        let all = try r.peekEvents()
        XCTAssertEqual(all.map(\.eventID), ["c-a", "c-b", "d-a"])
        XCTAssertEqual(try r.pendingEventCount(deviceID: DeviceID("a")), 2)
        XCTAssertEqual(try r.outboxCount(), 3)
        try r.deleteEvents(sequences: all.prefix(2).compactMap(\.sequence))
        XCTAssertEqual(try r.peekEvents().map(\.eventID), ["d-a"])
        XCTAssertEqual(try r.pendingEventCount(deviceID: DeviceID("b")), 0)
    }
}
