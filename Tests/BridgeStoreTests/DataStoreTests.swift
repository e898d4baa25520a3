import Foundation
import GRDB
import XCTest
@testable import BridgeStore

final class DataStoreTests: XCTestCase {
    func testOutboxKeepsOrderAndDeletesConfirmed() async throws {
        let dir = try makeTemporaryDirectory(self)
        var store = try openStore(dir)
        let id = try DeviceID("out")
        try await store.createDevice(id: id)
        var data = try await store.device(id).data
        for i in 0..<5 {
            try await data.appendEvent(eventID: "e\(i)", routingKey: "out.message.received", payload: Data("p\(i)".utf8))
        }
        // The same event id again is not appended twice.
        let again = try await data.appendEvent(eventID: "e1", routingKey: "other", payload: Data())
        XCTAssertEqual(again.routingKey, "out.message.received")
        XCTAssertEqual(again.payload, Data("p1".utf8))

        let all = try await data.peekEvents()
        XCTAssertEqual(all.map(\.eventID), ["e0", "e1", "e2", "e3", "e4"])
        XCTAssertEqual(all.compactMap(\.sequence), all.compactMap(\.sequence).sorted())
        let firstTwo = try await data.peekEvents(limit: 2)
        XCTAssertEqual(firstTwo.map(\.eventID), ["e0", "e1"])
        let deleted = try await data.deleteEvents(sequences: firstTwo.compactMap(\.sequence))
        XCTAssertEqual(deleted, 2)
        try await data.appendEvent(eventID: "e5", routingKey: "out.x", payload: Data())

        store.closeAll()
        store = try openStore(dir)
        data = try await store.device(id).data
        let rest = try await data.peekEvents()
        XCTAssertEqual(rest.map(\.eventID), ["e2", "e3", "e4", "e5"])
        XCTAssertEqual(rest.first?.payload, Data("p2".utf8))
        let count = try await data.outboxCount()
        XCTAssertEqual(count, 4)
    }

    func testIdempotencyInsertIfAbsent() async throws {
        let dir = try makeTemporaryDirectory(self)
        let store = try openStore(dir)
        let id = try DeviceID("idem")
        try await store.createDevice(id: id)
        let data = try await store.device(id).data
        let none = try await data.commandResult("cmd-1")
        XCTAssertNil(none)
        let first = try await data.recordCommandResult(commandID: "cmd-1", messageID: "3EB0AAA", result: #"{"status":"sent"}"#)
        XCTAssertTrue(first.inserted)
        let second = try await data.recordCommandResult(commandID: "cmd-1", messageID: "3EB0BBB", result: #"{"status":"failed"}"#)
        XCTAssertFalse(second.inserted)
        XCTAssertEqual(second.record.messageID, "3EB0AAA")
        XCTAssertEqual(second.record.result, #"{"status":"sent"}"#)
        let stored = try await data.commandResult("cmd-1")
        XCTAssertEqual(stored, first.record)
        let other = try await data.recordCommandResult(commandID: "cmd-2", messageID: nil, result: "{}")
        XCTAssertTrue(other.inserted)
        XCTAssertNil(other.record.messageID)

        // A receipt names the message; the lookup finds the command and its correlation id.
        _ = try await data.recordCommandResult(commandID: "cmd-3", messageID: "3EB0CCC", result: "{}", correlationID: "corr-3")
        let byMessage = try await data.command(forMessageID: "3EB0CCC")
        XCTAssertEqual(byMessage?.commandID, "cmd-3")
        XCTAssertEqual(byMessage?.correlationID, "corr-3")
        let unknown = try await data.command(forMessageID: "3EB0DDD")
        XCTAssertNil(unknown)
    }

    func testHistory() async throws {
        let dir = try makeTemporaryDirectory(self)
        let store = try openStore(dir)
        let id = try DeviceID("hist")
        try await store.createDevice(id: id)
        let data = try await store.device(id).data
        let chat = "15551234567@s.whatsapp.net"
        for i in 0..<5 {
            try await data.saveMessage(HistoryMessage(
                id: "M\(i)", chat: chat, sender: chat, direction: i.isMultiple(of: 2) ? .incoming : .outgoing,
                timestamp: 1_700_000_000 + Int64(i), kind: "text", status: "received", body: #"{"text":"\#(i)"}"#))
        }
        try await data.saveMessage(HistoryMessage(
            id: "M0", chat: "other@g.us", sender: chat, direction: .incoming, timestamp: 1, kind: "text", status: "received"))
        let updated = try await data.updateMessageStatus(chat: chat, id: "M1", status: "read")
        XCTAssertTrue(updated)
        let missing = try await data.updateMessageStatus(chat: chat, id: "nope", status: "read")
        XCTAssertFalse(missing)
        let last3 = try await data.messages(chat: chat, limit: 3)
        XCTAssertEqual(last3.map(\.id), ["M2", "M3", "M4"])
        let m1 = try await data.message(chat: chat, id: "M1")
        XCTAssertEqual(m1?.status, "read")
        XCTAssertEqual(m1?.direction, .outgoing)
        XCTAssertEqual(m1?.body, #"{"text":"1"}"#)
        let otherChat = try await data.messages(chat: "other@g.us")
        XCTAssertEqual(otherChat.count, 1)
    }
}
