import Foundation
import WABinary
import WAClient
import XCTest

final class GroupNodesTests: XCTestCase {
    func testMetadataQueryAnswerRoundTrip() throws {
        let group = JID(user: "120363000000000001", server: JID.groupServer)
        let alice = JID(user: "15550000001", server: JID.userServer)
        let bob = JID(user: "15550000002", server: JID.userServer)
        let query = try wire(try GroupNodes.metadataQueryIQ(id: "g1", group: group))
        XCTAssertEqual(query.string("xmlns"), "w:g2")
        XCTAssertEqual(query.jid("to"), group)
        XCTAssertEqual(query.child("query")?.string("request"), "interactive")

        let info = GroupNodes.Info(jid: group, subject: "s", creator: alice, creation: 1_700_000_000,
                                   participants: [alice, bob], admins: [alice])
        let answer = try wire(GroupNodes.metadataAnswer(to: query, info: info))
        XCTAssertEqual(answer.string("id"), "g1")
        XCTAssertEqual(answer.child("group")?.string("id"), group.user, "the bare group id")
        XCTAssertEqual(answer.child("group")?.children("participant").first?.string("type"), "superadmin")
        let parsed = try GroupNodes.parseMetadata(answer, group: group)
        XCTAssertEqual(parsed.jid, group)
        XCTAssertEqual(parsed.members, [alice, bob])
        XCTAssertEqual(parsed.admins, [alice])
        XCTAssertEqual(parsed.creator, alice)
        XCTAssertEqual(parsed.creation, 1_700_000_000)
        XCTAssertEqual(parsed.addressingMode, .phoneNumber, "no addressing_mode: a phone-number group")
    }

    func testRefusalsAndBounds() throws {
        XCTAssertThrowsError(try GroupNodes.metadataQueryIQ(id: "g", group: JID(user: "1", server: JID.userServer)))
        let group = JID(user: "120363000000000002", server: JID.groupServer)
        let error = Node("iq", attributes: ["id": "g", "type": "error"], children: [Node("error", attributes: ["code": "404"])])
        XCTAssertThrowsError(try GroupNodes.parseMetadata(error, group: group)) {
            XCTAssertEqual(($0 as? WAClientError)?.code, .serverError)
        }
        let many = Node("iq", attributes: ["id": "g", "type": "result"], children: [
            Node("group", attributes: ["id": .string(group.user)], children: (0...GroupNodes.maxParticipants).map {
                Node("participant", attributes: ["jid": .jid(JID(user: String(15_550_000_000 + $0), server: JID.userServer))])
            }),
        ])
        XCTAssertThrowsError(try GroupNodes.parseMetadata(many, group: group)) {
            XCTAssertEqual(($0 as? WAClientError)?.code, .limitExceeded)
        }
    }
}
