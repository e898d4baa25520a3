import XCTest
@testable import WABinary

/// Byte-exact encodings: the protocol map's example, and others derived by
/// hand from the token tables and tag bytes.
final class KnownAnswerTests: XCTestCase {
    /// `<iq to=JID/>` is list8 of 3: iq (token 25), to (token 17), the JID.
    private func iqTo(_ jid: JID) throws -> [UInt8] {
        let bytes = try BinaryEncoder.encode(Node("iq", [Attribute("to", .jid(jid))]))
        XCTAssertEqual(Array(bytes.prefix(4)), [0xF8, 0x03, 0x19, 0x11])
        return Array(bytes.dropFirst(4))
    }

    private func iqTo(_ value: String) throws -> [UInt8] {
        let bytes = try BinaryEncoder.encode(Node("iq", [Attribute("to", .string(value))]))
        XCTAssertEqual(Array(bytes.prefix(4)), [0xF8, 0x03, 0x19, 0x11])
        return Array(bytes.dropFirst(4))
    }

    func testProtocolMapADJIDExample() throws {
        let jid = try JID(parsing: "15551234567:3@s.whatsapp.net")
        XCTAssertEqual(try iqTo(jid), [0xF7, 0x00, 0x03, 0xFF, 0x86, 0x15, 0x55, 0x12, 0x34, 0x56, 0x7F])
    }

    func testJIDForms() throws {
        // LID device: domain byte 1.
        XCTAssertEqual(try iqTo(JID(parsing: "123:5@lid")), [0xF7, 0x01, 0x05, 0xFF, 0x82, 0x12, 0x3F])
        // Hosted is always an AD JID, even for device 0: domain 128 / 129.
        XCTAssertEqual(try iqTo(JID(parsing: "123@hosted")), [0xF7, 0x80, 0x00, 0xFF, 0x82, 0x12, 0x3F])
        XCTAssertEqual(try iqTo(JID(parsing: "123:2@hosted.lid")), [0xF7, 0x81, 0x02, 0xFF, 0x82, 0x12, 0x3F])
        // A user without device is a JID pair; g.us is token 28.
        XCTAssertEqual(try iqTo(JID(parsing: "123@g.us")), [0xFA, 0xFF, 0x82, 0x12, 0x3F, 0x1C])
        // Server-only JID: empty user is byte 0; s.whatsapp.net is token 3.
        XCTAssertEqual(try iqTo(JID.serverJID), [0xFA, 0x00, 0x03])
        // status@broadcast: status 11, broadcast 13.
        XCTAssertEqual(try iqTo(JID.statusBroadcast), [0xFA, 0x0B, 0x0D])
        // Messenger: FB JID with a 16-bit device; msgr is token 0xCC.
        XCTAssertEqual(try iqTo(JID(user: "100012345", device: 0x0102, server: "msgr")),
                       [0xF6, 0xFF, 0x85, 0x10, 0x00, 0x12, 0x34, 0x5F, 0x01, 0x02, 0xCC])
        // Interop: user, device, integrator, server (raw: not a token).
        XCTAssertEqual(try iqTo(JID(user: "1234", device: 1, integrator: 7, server: "interop")),
                       [0xF5, 0xFF, 0x02, 0x12, 0x34, 0x00, 0x01, 0x00, 0x07, 0xFC, 0x07] + Array("interop".utf8))
    }

    func testStringForms() throws {
        XCTAssertEqual(try iqTo("message"), [0x13])                      // single-byte token 19
        XCTAssertEqual(try iqTo("read-self"), [0xEC, 0x00])              // dictionary 0, index 0
        XCTAssertEqual(try iqTo("reject"), [0xED, 0x00])                 // dictionary 1
        XCTAssertEqual(try iqTo("64"), [0xEE, 0x00])                     // a token wins over nibble packing
        XCTAssertEqual(try iqTo("1724"), [0xEF, 0x00])                   // dictionary 3
        XCTAssertEqual(try iqTo("1234567"), [0xFF, 0x84, 0x12, 0x34, 0x56, 0x7F])
        XCTAssertEqual(try iqTo("1.5-0"), [0xFF, 0x83, 0x1B, 0x5A, 0x0F])
        XCTAssertEqual(try iqTo("0123"), [0xFF, 0x02, 0x01, 0x23])       // nibble before hex
        XCTAssertEqual(try iqTo("ABCDEF1"), [0xFB, 0x84, 0xAB, 0xCD, 0xEF, 0x1F])
        XCTAssertEqual(try iqTo("abc"), [0xFC, 0x03, 0x61, 0x62, 0x63])  // lowercase hex is raw
        XCTAssertEqual(try iqTo(""), [0xFF, 0x00])                       // empty string: empty nibble string
        let long = String(repeating: "1", count: 128)                    // past the packed limit: raw
        XCTAssertEqual(Array(try iqTo(long).prefix(2)), [0xFC, 0x80])
        XCTAssertEqual(try iqTo(String(repeating: "9", count: 127)).prefix(2), [0xFF, 0xC0])
    }

    func testContentAndListForms() throws {
        // <message><enc>…300 bytes…</enc></message>
        let payload = [UInt8](repeating: 0xAB, count: 300)
        let node = Node("message", content: .nodes([Node("enc", content: .bytes(payload))]))
        let bytes = try BinaryEncoder.encode(node)
        XCTAssertEqual(Array(bytes.prefix(8)), [0xF8, 0x02, 0x13, 0xF8, 0x01, 0xF8, 0x02, 0x1D])
        XCTAssertEqual(Array(bytes[8..<12]), [0xFD, 0x00, 0x01, 0x2C])   // binary20, length 300
        XCTAssertEqual(bytes.count, 12 + 300)

        // 300 children need list16.
        let many = Node("list", content: .nodes(Array(repeating: Node("user"), count: 300)))
        let manyBytes = try BinaryEncoder.encode(many)
        XCTAssertEqual(Array(manyBytes.prefix(6)), [0xF8, 0x02, 0x71, 0xF9, 0x01, 0x2C])
        XCTAssertEqual(Array(manyBytes[6..<9]), [0xF8, 0x01, 0x0E])

        // Frames carry a leading flag byte 0.
        XCTAssertEqual(try BinaryEncoder.encodeFrame(Node("iq")), [0x00, 0xF8, 0x01, 0x19])
    }

    func testDecodesHandWrittenStanza() throws {
        // <receipt id="ABCDEF1" to=123:5@lid type="read"><list/></receipt>
        let wire: [UInt8] = [
            0xF8, 0x08, 0x07,
            0x08, 0xFB, 0x84, 0xAB, 0xCD, 0xEF, 0x1F,
            0x11, 0xF7, 0x01, 0x05, 0xFF, 0x82, 0x12, 0x3F,
            0x04, 0x2A,
            0xF8, 0x01, 0xF8, 0x01, 0x71,
        ]
        let node = try BinaryDecoder.decode(wire)
        XCTAssertEqual(node.tag, "receipt")
        XCTAssertEqual(node.string("id"), "ABCDEF1")
        XCTAssertEqual(node.jid("to"), JID(user: "123", device: 5, server: "lid"))
        XCTAssertEqual(node.string("type"), "read")
        XCTAssertEqual(node.children.map(\.tag), ["list"])
        XCTAssertEqual(try BinaryEncoder.encode(node), wire)
    }

    func testTextContentDecodesAsBytes() throws {
        // <result>true</result>: content is token "true", handed out as UTF-8 bytes.
        let trueToken = UInt8(TokenTables.single.firstIndex(of: "true")!)
        let node = try BinaryDecoder.decode([0xF8, 0x02, 0x14, trueToken])
        XCTAssertEqual(node.text, "true")
        // Packed content too.
        XCTAssertEqual(try BinaryDecoder.decode([0xF8, 0x02, 0x14, 0xFF, 0x81, 0x7F]).text, "7")
    }

    func testDictionaryVersionAndTables() {
        XCTAssertEqual(Token.dictionaryVersion, 3)
        XCTAssertEqual(TokenTables.single.count, 236)
        XCTAssertEqual(TokenTables.double.map(\.count), [256, 256, 256, 256])
        XCTAssertEqual(Token.index(of: "s.whatsapp.net"), .single(3))
        XCTAssertEqual(Token.index(of: "mute_v2"), .double(dictionary: 0, index: 255))
        XCTAssertNil(Token.index(of: ""))
        XCTAssertNil(Token.single(0))
        XCTAssertNil(Token.single(236))
    }
}
