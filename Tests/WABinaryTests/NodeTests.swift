import XCTest
@testable import WABinary

final class NodeTests: XCTestCase {
    private let stanza = Node("iq", attributes: ["id": "1", "to": .jid(JID.serverJID), "type": "get"], children: [
        Node("usync", attributes: ["sid": "s1"], children: [
            Node("list", children: [
                Node("user", attributes: ["jid": .jid(JID(user: "1555", device: 2, server: JID.userServer))]),
                Node("user", attributes: ["jid": "1666@s.whatsapp.net"]),
            ]),
        ]),
        Node("enc", content: .bytes([0x00, 0xFF])),
        Node("text", content: .bytes(Array("hi \"you\"".utf8))),
    ])

    func testAccessors() {
        XCTAssertEqual(stanza.string("type"), "get")
        XCTAssertEqual(stanza.jid("to"), JID.serverJID)
        XCTAssertNil(stanza.string("missing"))
        XCTAssertEqual(stanza.children.map(\.tag), ["usync", "enc", "text"])
        let users = stanza.child(path: "usync", "list")?.children("user") ?? []
        XCTAssertEqual(users.compactMap { $0.jid("jid") }.map(\.description), ["1555:2@s.whatsapp.net", "1666@s.whatsapp.net"])
        XCTAssertNil(stanza.child(path: "usync", "nothing"))
        XCTAssertEqual(stanza.child("enc")?.bytes, [0x00, 0xFF])
        XCTAssertEqual(stanza.child("text")?.text, "hi \"you\"")
        XCTAssertNil(stanza.child("enc")?.text)
        XCTAssertEqual(Node("x", attributes: ["n": "42"]).int("n"), 42)
    }

    func testSubscriptSetsRemovesAndAppends() {
        var node = Node("receipt", attributes: ["id": "A", "type": "read"])
        node["type"] = "played"
        node["t"] = "123"
        node["id"] = nil
        XCTAssertEqual(node.attributes, [Attribute("type", "played"), Attribute("t", "123")])
    }

    func testXMLText() {
        XCTAssertEqual(
            stanza.description,
            #"<iq id="1" to="s.whatsapp.net" type="get"><usync sid="s1"><list><user jid="1555:2@s.whatsapp.net"/>"#
                + #"<user jid="1666@s.whatsapp.net"/></list></usync><enc><!-- 2 bytes: 00ff --></enc><text>hi &quot;you&quot;</text></iq>"#)
        XCTAssertEqual(Node("a", children: [Node("b")]).xmlString(), "<a>\n  <b/>\n</a>")
        let long = Node("enc", content: .bytes(Array(repeating: 1, count: 100))).description
        XCTAssertTrue(long.hasPrefix("<enc><!-- 100 bytes: 0101"), long)
        XCTAssertTrue(long.hasSuffix("… --></enc>"), long)
    }
}
