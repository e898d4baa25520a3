import Foundation
import WABinary
import WAClient
import XCTest

final class GroupNodesTests: XCTestCase {
    func testMetadataQuery() throws {
        let group = JID(user: "120363000000000001", server: JID.groupServer)
        let query = try wire(try GroupNodes.metadataQueryIQ(id: "g1", group: group))
        XCTAssertEqual(query.string("xmlns"), "w:g2")
        XCTAssertEqual(query.jid("to"), group)
        XCTAssertEqual(query.child("query")?.string("request"), "interactive")
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
