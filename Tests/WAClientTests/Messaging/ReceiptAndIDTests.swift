import Foundation
import WABinary
import WAClient
import XCTest

final class ReceiptAndIDTests: XCTestCase {
    let bob = JID(user: "15550002222", device: 5, server: JID.userServer)
    let group = JID(user: "120363000000000001", server: JID.groupServer)

    func testReceiptsParseIntoStatuses() throws {
        func parse(_ attrs: [Attribute], _ children: [Node] = []) throws -> ReceiptEvent {
            try ReceiptEvent(parsing: try wire(Node("receipt", attrs + [Attribute("t", "1700000000")],
                                                    content: children.isEmpty ? .none : .nodes(children))))
        }
        guard case .status(let delivered) = try parse([Attribute("from", .jid(bob)), Attribute("id", "A1")]) else { return XCTFail() }
        XCTAssertEqual(delivered.status, .delivered)
        XCTAssertEqual(delivered.messageIDs, ["A1"])
        XCTAssertEqual(delivered.chat, bob.nonAD)
        XCTAssertEqual(delivered.by, bob)
        XCTAssertEqual(delivered.timestamp, Date(timeIntervalSince1970: 1_700_000_000))

        guard case .status(let read) = try parse(
            [Attribute("from", .jid(group)), Attribute("participant", .jid(bob)), Attribute("id", "A1"), Attribute("type", "read")],
            [Node("list", children: [Node("item", attributes: ["id": "A2"]), Node("item", attributes: ["id": "A3"])])]
        ) else { return XCTFail() }
        XCTAssertEqual(read.status, .read)
        XCTAssertEqual(read.messageIDs, ["A1", "A2", "A3"])
        XCTAssertEqual(read.chat, group)
        XCTAssertEqual(read.by, bob)

        guard case .status(let played) = try parse([Attribute("from", .jid(bob)), Attribute("id", "A4"), Attribute("type", "played")])
        else { return XCTFail() }
        XCTAssertEqual(played.status, .played)
        guard case .status(let readSelf) = try parse([Attribute("from", .jid(bob)), Attribute("id", "A5"), Attribute("type", "read-self")])
        else { return XCTFail() }
        XCTAssertEqual(readSelf.status, .read)
        XCTAssertTrue(readSelf.isSelf)
        guard case .status(let sender) = try parse([Attribute("from", .jid(bob)), Attribute("id", "A6"), Attribute("type", "sender")])
        else { return XCTFail() }
        XCTAssertEqual(sender.status, .delivered)
        XCTAssertTrue(sender.isSelf)
        guard case .other(let type, let ids, _) = try parse([Attribute("from", .jid(bob)), Attribute("id", "A7"), Attribute("type", "server-error")])
        else { return XCTFail() }
        XCTAssertEqual(type, "server-error")
        XCTAssertEqual(ids, ["A7"])

        let tooMany = (0...ReceiptNodes.maxListItems).map { Node("item", attributes: ["id": .string("X\($0)")]) }
        XCTAssertThrowsError(try parse([Attribute("from", .jid(bob)), Attribute("id", "A8"), Attribute("type", "read")],
                                       [Node("list", children: tooMany)]))
    }

    func testReceiptAck() throws {
        let receipt = try wire(Node("receipt", attributes: ["from": .jid(group), "participant": .jid(bob), "id": "A1", "type": "read"]))
        let ack = try wire(ReceiptNodes.ack(for: receipt))
        XCTAssertEqual(ack.tag, "ack")
        XCTAssertEqual(ack.string("class"), "receipt")
        XCTAssertEqual(ack.string("id"), "A1")
        XCTAssertEqual(ack.jid("to"), group)
        XCTAssertEqual(ack.jid("participant"), bob)
        XCTAssertEqual(ack.string("type"), "read")
    }

    func testServerAck() throws {
        let sent = try XCTUnwrap(try ServerAck(parsing: try wire(Node("ack", attributes: [
            "class": "message", "id": "3EB0X", "from": .jid(bob.nonAD), "t": "1700000001", "phash": "2:abcdefgh",
        ]))))
        XCTAssertEqual(sent.status, .sent)
        XCTAssertEqual(sent.phash, "2:abcdefgh")
        let failed = try XCTUnwrap(try ServerAck(parsing: try wire(Node("ack", attributes: [
            "class": "message", "id": "3EB0Y", "error": "479",
        ]))))
        XCTAssertEqual(failed.status, .failed(code: 479))
        XCTAssertNil(try ServerAck(parsing: try wire(Node("ack", attributes: ["class": "receipt", "id": "z"]))))
    }

    func testReadReceiptOnDemand() throws {
        let node = try wire(try ReceiptNodes.read(ids: ["A1", "A2", "A3"], chat: group, sender: bob,
                                                  timestamp: Date(timeIntervalSince1970: 1_700_000_002)))
        XCTAssertEqual(node.string("type"), "read")
        XCTAssertEqual(node.string("id"), "A1")
        XCTAssertEqual(node.jid("to"), group)
        XCTAssertEqual(node.jid("participant"), bob.nonAD)
        XCTAssertEqual(node.string("t"), "1700000002")
        XCTAssertEqual(node.child("list")?.children("item").compactMap { $0.string("id") }, ["A2", "A3"])
        let direct = try wire(try ReceiptNodes.read(ids: ["B1"], chat: bob, played: true))
        XCTAssertEqual(direct.jid("to"), bob.nonAD)
        XCTAssertEqual(direct.string("type"), "played")
        XCTAssertNil(direct["participant"])
        XCTAssertNil(direct.child("list"))
        XCTAssertThrowsError(try ReceiptNodes.read(ids: [], chat: bob))
        // A read receipt, forwarded by the server, parses back into a `read` status.
        var forwarded = direct
        forwarded["to"] = nil
        forwarded["from"] = .jid(JID(user: "15550001111", device: 2, server: JID.userServer))
        guard case .status(let update) = try ReceiptEvent(parsing: try wire(forwarded)) else { return XCTFail() }
        XCTAssertEqual(update.status, .played)
        XCTAssertEqual(update.messageIDs, ["B1"])
    }

    func testDeterministicIDIsStableAndDiffersPerKeyAndDevice() {
        let device = JID(user: "15550001111", device: 3, server: JID.userServer)
        let id = MessageID.derived(idempotencyKey: "order-42", device: device)
        // Known answer computed independently (Python hashlib, see docs/protocol.md).
        XCTAssertEqual(id, "3EB06BA52E3AB84F0878F2")
        XCTAssertEqual(MessageID.derived(idempotencyKey: "order-42", device: device), id)
        XCTAssertNotEqual(MessageID.derived(idempotencyKey: "order-43", device: device), id)
        XCTAssertNotEqual(MessageID.derived(idempotencyKey: "order-42", device: JID(user: "15550001111", device: 4, server: JID.userServer)), id)
        XCTAssertTrue(MessageID.isAcceptable(id))
    }

    func testRandomIDShape() {
        let own = JID(user: "15550001111", device: 3, server: JID.userServer)
        let ids = (0..<50).map { _ in MessageID.random(ownJID: own) }
        XCTAssertEqual(Set(ids).count, 50)
        for id in ids {
            XCTAssertTrue(id.hasPrefix("3EB0"))
            XCTAssertEqual(id.count, 22)
            XCTAssertTrue(id.dropFirst(4).allSatisfy { "0123456789ABCDEF".contains($0) })
        }
        XCTAssertFalse(MessageID.isAcceptable(""))
        XCTAssertFalse(MessageID.isAcceptable("has space"))
        XCTAssertFalse(MessageID.isAcceptable(String(repeating: "A", count: 129)))
    }

    func testPhashKnownAnswer() {
        // sha256("15550001111.0:0@s.whatsapp.net15550001111.0:3@s.whatsapp.net15550002222.0:0@s.whatsapp.net")[0:6],
        // base64 without padding, computed by hand with Python's hashlib.
        let devices = [
            JID(user: "15550002222", server: JID.userServer),
            JID(user: "15550001111", device: 3, server: JID.userServer),
            JID(user: "15550001111", server: JID.userServer),
        ]
        XCTAssertEqual(ParticipantHash.v2(devices), "2:M90nX1cT")
        XCTAssertEqual(ParticipantHash.v2(devices.reversed()), "2:M90nX1cT", "order does not matter")
        XCTAssertEqual(ParticipantHash.adString(devices[1]), "15550001111.0:3@s.whatsapp.net")
    }
}
