import Foundation
import WABinary
import WAClient
import WASim
import WAProto
import WASignal
import XCTest

/// Hostile or odd stanzas get typed answers, and every store of state is bounded.
final class MessagingBoundsTests: XCTestCase {
    let alice = JID(user: "15550001111", device: 1, server: JID.userServer)

    func receiver() async throws -> MessageReceiver {
        let bob = try await Party.make("15550002222", device: 0)
        return bob.receiver()
    }

    func testTooManyEncIsRefused() async throws {
        var receiver = try await receiver()
        let encs = (0...MessageReceiver.maxEncPerMessage).map { _ in
            Node("enc", attributes: ["v": "2", "type": "msg"], content: .bytes([1, 2, 3]))
        }
        let stanza = try wire(Node("message", attributes: ["from": .jid(alice), "id": "H1", "t": "1"], children: encs))
        // Reported (message.undecryptable TOO_MANY_ENC), not dropped; no retry: a resend would be the same.
        guard case .undecryptable(let failed, let retry) = try await receiver.receive(stanza) else {
            return XCTFail("expected undecryptable")
        }
        XCTAssertEqual(failed.error.code, .limitExceeded)
        XCTAssertEqual(failed.reason, .tooManyEnc)
        XCTAssertEqual(failed.id, "H1")
        XCTAssertNil(retry)
        XCTAssertFalse(failed.retryRequested)
    }

    func testStanzaWithoutEncIsIgnoredWithAReceipt() async throws {
        var receiver = try await receiver()
        let stanza = try wire(Node("message", attributes: ["from": .jid(alice), "id": "H2", "t": "1"], children: [Node("meta")]))
        guard case .ignored(let id, _, let receipt) = try await receiver.receive(stanza) else { return XCTFail("expected ignored") }
        XCTAssertEqual(id, "H2")
        XCTAssertEqual(try wire(receipt).jid("to"), alice)
    }

    /// `<unavailable>` instead of ciphertext is reported UNAVAILABLE with its type (our phone is
    /// asked for it by the messaging feature), never ignored.
    func testUnavailableIsReportedWithItsType() async throws {
        var receiver = try await receiver()
        let stanza = try wire(Node("message", attributes: ["from": .jid(alice), "id": "H4", "t": "1"],
                                   children: [Node("unavailable", attributes: ["type": "view_once"])]))
        guard case .undecryptable(let failed, let retry) = try await receiver.receive(stanza) else {
            return XCTFail("expected undecryptable")
        }
        XCTAssertEqual(failed.reason, .unavailable)
        XCTAssertEqual(failed.unavailableType, "view_once")
        XCTAssertNil(retry, "no retry receipt to the sender: it has nothing to resend to the server")
    }

    func testGroupMessageWithoutParticipantIsMalformed() async throws {
        var receiver = try await receiver()
        let stanza = try wire(Node("message", attributes: [
            "from": .jid(JID(user: "1203", server: JID.groupServer)), "id": "H3",
        ], children: [Node("enc", attributes: ["v": "2", "type": "skmsg"], content: .bytes([1]))]))
        do {
            _ = try await receiver.receive(stanza)
            XCTFail("expected stanza_malformed")
        } catch let error as WAClientError {
            XCTAssertEqual(error.code, .stanzaMalformed)
        }
    }

    func testUnknownEncTypeAndGarbageAreTypedFailures() async throws {
        var receiver = try await receiver()
        let garbage = try wire(Node("message", attributes: ["from": .jid(alice), "id": "H4", "t": "5"], children: [
            Node("enc", attributes: ["v": "2", "type": "pkmsg"], content: .bytes([0x33, 0xFF, 0xFF])),
        ]))
        guard case .undecryptable(let failure, let retry) = try await receiver.receive(garbage) else { return XCTFail() }
        XCTAssertEqual(failure.error.code, .messageDecryptFailed)
        XCTAssertNotNil(retry)
        let unknown = try wire(Node("message", attributes: ["from": .jid(alice), "id": "H5", "t": "5"], children: [
            Node("enc", attributes: ["v": "2", "type": "frank"], content: .bytes([1])),
        ]))
        guard case .message(let message, _) = try await receiver.receive(unknown) else { return XCTFail() }
        XCTAssertEqual(message.content, .other)
    }

    func testRecentMessageCacheIsBounded() {
        var cache = RecentMessageCache(capacity: 3)
        let chat = JID(user: "1555", server: JID.userServer)
        for i in 0..<5 { cache.insert(text("m\(i)"), chat: chat, id: "id\(i)") }
        XCTAssertEqual(cache.count, 3)
        XCTAssertNil(cache.message(chat: chat, id: "id0"))
        XCTAssertNil(cache.message(chat: chat, id: "id1"))
        XCTAssertEqual(cache.message(chat: JID(user: "1555", device: 2, server: JID.userServer), id: "id4")?.conversation, "m4")
    }

    func testGroupRoutingSkipsSenderAndDevicesWithNothing() throws {
        let group = JID(user: "1203", server: JID.groupServer)
        let bob = JID(user: "15550002222", server: JID.userServer)
        let sent = try wire(Node("message", attributes: ["to": .jid(group), "id": "G9", "type": "text"], children: [
            Node("participants", children: [
                Node("to", attributes: ["jid": .jid(bob)], children: [Node("enc", attributes: ["v": "2", "type": "pkmsg"], content: .bytes([1]))]),
            ]),
            Node("enc", attributes: ["v": "2", "type": "skmsg"], content: .bytes([2])),
        ]))
        let carol = JID(user: "15550003333", server: JID.userServer)
        let out = try ServerMessageRouting.deliveries(of: sent, from: alice, memberDevices: [alice, bob, carol], timestamp: 9)
        XCTAssertEqual(out.map(\.device), [bob, carol])
        XCTAssertEqual(out[0].node.children("enc").map { $0.string("type") }, ["pkmsg", "skmsg"])
        XCTAssertEqual(out[1].node.children("enc").map { $0.string("type") }, ["skmsg"])
        XCTAssertEqual(out[1].node.jid("participant"), alice)
        XCTAssertEqual(out[1].node.jid("from"), group)
        XCTAssertEqual(ServerMessageRouting.originalSender(of: try wire(Node("receipt", attributes: [
            "to": .jid(group), "participant": .jid(alice), "id": "G9",
        ]))), alice)
    }
}
