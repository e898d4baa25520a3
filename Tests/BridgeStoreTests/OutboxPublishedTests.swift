import Foundation
import XCTest
@testable import BridgeStore

/// The record of published event ids (history v3) and the registry's outbox (registry v2).
final class OutboxPublishedTests: XCTestCase {
    func testConfirmedIdsAreRememberedBoundedAndNotAppendedAgain() async throws {
        let dir = try makeTemporaryDirectory(self)
        let store = try openStore(dir)
        let id = try DeviceID("pub")
        try await store.createDevice(id: id)
        let data = try await store.device(id).data

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

    func testRegistryOutboxKeepsOrderPerDeviceCountAndDeletes() async throws {
        let dir = try makeTemporaryDirectory(self)
        let store = try openStore(dir)
        let r = store.registry
        let now = Date()
        try await r.appendEvents([
            RegistryOutboxEvent(eventID: "c-a", deviceID: "a", routingKey: "a.device.created", payload: Data(), createdAt: now),
            RegistryOutboxEvent(eventID: "c-b", deviceID: "b", routingKey: "b.device.created", payload: Data(), createdAt: now),
            RegistryOutboxEvent(eventID: "d-a", deviceID: "a", routingKey: "a.device.deleted", payload: Data(), createdAt: now),
        ])
        // The same id again is skipped.
        try await r.appendEvents([RegistryOutboxEvent(eventID: "c-a", deviceID: "a", routingKey: "x", payload: Data(), createdAt: now)])
        let all = try await r.peekEvents()
        XCTAssertEqual(all.map(\.eventID), ["c-a", "c-b", "d-a"])
        let v1 = try await r.pendingEventCount(deviceID: DeviceID("a"))
        XCTAssertEqual(v1, 2)
        let v2 = try await r.outboxCount()
        XCTAssertEqual(v2, 3)
        try await r.deleteEvents(sequences: all.prefix(2).compactMap(\.sequence))
        let v3 = try await r.peekEvents().map(\.eventID)
        XCTAssertEqual(v3, ["d-a"])
        let v4 = try await r.pendingEventCount(deviceID: DeviceID("b"))
        XCTAssertEqual(v4, 0)
    }
}
