import Foundation
import XCTest
@testable import WABinary

/// Fixed vectors recorded from whatsmeow (commit 33cfac5): `ours` is our
/// encoding of a random tree, `whatsmeow` is what whatsmeow's codec wrote
/// after decoding `ours`. The trees must agree, allowing only whatsmeow's
/// known habits (see `whatsmeowView`), and where none of those habits apply
/// the bytes must be identical.
final class WhatsmeowVectorTests: XCTestCase {
    private struct Vector: Decodable {
        let ours: String
        let whatsmeow: String
    }

    private func bytes(_ hex: String) throws -> [UInt8] {
        var out: [UInt8] = []
        var high: UInt8?
        for c in hex.utf8 {
            guard let v = UInt8(String(UnicodeScalar(c)), radix: 16) else { throw WABinaryError(code: .invalidToken, message: "bad hex") }
            if let h = high { out.append(h << 4 | v); high = nil } else { high = v }
        }
        return out
    }

    /// The node as whatsmeow keeps it: attributes in a map (last duplicate
    /// wins, order lost, empty values dropped), no raw agent on
    /// s.whatsapp.net, an empty child list the same as no content.
    private func whatsmeowView(_ node: Node) -> Node {
        var map: [String: AttributeValue] = [:]
        for attribute in node.attributes {
            var value = attribute.value
            if case .jid(var jid) = value, jid.server == JID.userServer {
                jid.agent = 0
                value = .jid(jid)
            }
            map[attribute.key] = value
        }
        let attributes = map.filter { $0.value != .string("") }.sorted { $0.key < $1.key }.map { Attribute($0.key, $0.value) }
        var content = node.content
        if case .nodes(let children) = content {
            content = children.isEmpty ? .none : .nodes(children.map(whatsmeowView))
        }
        return Node(node.tag, attributes, content: content)
    }

    /// True when none of whatsmeow's habits can change the bytes.
    private func habitFree(_ node: Node) -> Bool {
        guard node.attributes.count <= 1, node.content != .nodes([]) else { return false }
        for attribute in node.attributes {
            if attribute.value == .string("") { return false }
            if case .jid(let jid) = attribute.value, jid.agent != 0 { return false }
        }
        return node.children.allSatisfy(habitFree)
    }

    func testTreesAgreeWithWhatsmeow() throws {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "whatsmeow-vectors", withExtension: "json", subdirectory: "Fixtures"))
        let vectors = try JSONDecoder().decode([Vector].self, from: Data(contentsOf: url))
        XCTAssertEqual(vectors.count, 240)
        var identical = 0
        for (i, vector) in vectors.enumerated() {
            let ours = try BinaryDecoder.decode(try bytes(vector.ours))
            let theirs = try BinaryDecoder.decode(try bytes(vector.whatsmeow))
            XCTAssertEqual(try BinaryEncoder.encode(ours), try bytes(vector.ours), "vector \(i): our encoding moved")
            XCTAssertEqual(whatsmeowView(theirs), whatsmeowView(ours), "vector \(i)")
            if habitFree(ours) {
                XCTAssertEqual(vector.whatsmeow, vector.ours, "vector \(i): bytes differ from whatsmeow")
                identical += 1
            }
        }
        print("whatsmeow vectors: \(vectors.count) trees agree, \(identical) byte-identical")
        XCTAssertGreaterThan(identical, 40, "enough vectors should compare byte for byte")
    }
}
