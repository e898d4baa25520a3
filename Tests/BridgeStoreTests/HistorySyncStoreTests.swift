import Foundation
import XCTest
@testable import BridgeStore

/// `saveHistorySync` on a real `history.sqlite`: upserts, a live message wins over its
/// historical copy, and the bounds (age, count) prune historical messages only.
final class HistorySyncStoreTests: XCTestCase {
    func message(_ id: String, chat: String = "15550001111@s.whatsapp.net", age: Int64, now: Date) -> HistoryMessage {
        HistoryMessage(id: id, chat: chat, sender: chat, direction: .incoming, timestamp: Int64(now.timeIntervalSince1970) - age,
                       kind: "text", status: "history", body: #"{"text":"t"}"#)
    }

    func testBoundsPruneHistoricalMessagesOnly() async throws {
        let dir = try makeTemporaryDirectory(self)
        let store = try openStore(dir)
        let id = try DeviceID("hist")
        try await store.createDevice(id: id)
        let data = try await store.device(id).data
        let now = Date()
        // A live message, older than every bound: never pruned by history sync.
        try await data.saveMessage(HistoryMessage(
            id: "live", chat: "15550001111@s.whatsapp.net", sender: "15550001111@s.whatsapp.net", direction: .incoming,
            timestamp: Int64(now.timeIntervalSince1970) - 90 * 86_400, kind: "text", status: "received"))
        let bounds = HistoryBounds(maxAge: 7 * 86_400, maxMessages: 3)
        let first = try await data.saveHistorySync(
            conversations: [HistoryConversationRecord(chat: "15550001111@s.whatsapp.net", name: "A", lastMessageAt: 1)],
            messages: [message("m1", age: 100, now: now), message("m2", age: 200, now: now), message("old", age: 30 * 86_400, now: now),
                       message("live", age: 5, now: now)],
            pushNames: [PushNameRecord(jid: "15550001111@s.whatsapp.net", name: "Ann")], bounds: bounds, now: now)
        XCTAssertEqual(first, HistorySyncStored(conversations: 1, messages: 2, pushNames: 1, pruned: 1),
                       "the live copy of `live` wins; `old` is past 7 days")
        let live = try await data.message(chat: "15550001111@s.whatsapp.net", id: "live")
        XCTAssertEqual(live?.status, "received")

        let second = try await data.saveHistorySync(
            conversations: [HistoryConversationRecord(chat: "15550001111@s.whatsapp.net", name: "Ann's chat", lastMessageAt: 2)],
            messages: [message("m3", age: 50, now: now), message("m4", age: 60, now: now), message("m0", age: 5_000, now: now)],
            pushNames: [PushNameRecord(jid: "15550001111@s.whatsapp.net", name: "Ann B")], bounds: bounds, now: now)
        XCTAssertEqual(second.pruned, 2, "five historical, three kept: the oldest two go")
        XCTAssertEqual(second.messages, 2, "m3 and m4 stay of the three new ones")
        let count = try await data.historicalMessageCount()
        XCTAssertEqual(count, 3)
        let kept = try await data.messages(chat: "15550001111@s.whatsapp.net").map(\.id)
        XCTAssertEqual(kept, ["live", "m1", "m4", "m3"])
        let conversations = try await data.conversations()
        XCTAssertEqual(conversations.map(\.name), ["Ann's chat"])
        let name = try await data.pushName(for: "15550001111@s.whatsapp.net")
        XCTAssertEqual(name, "Ann B")
    }
}
