import Foundation
import WABinary

// Small helpers the messaging builders and parsers share: binary children,
// fixed-size big-endian integers, and "this part must be here" lookups that
// throw `client.stanza_malformed` instead of returning nil.
extension Node {
    /// `<tag>bytes</tag>` with raw binary content.
    static func binary(_ tag: String, _ data: some DataProtocol) -> Node {
        Node(tag, content: .bytes([UInt8](data)))
    }

    /// The first child `tag`, or a `client.stanza_malformed` error naming it.
    func required(_ tag: String, in context: String) throws -> Node {
        guard let node = child(tag) else {
            throw WAClientError(.stanzaMalformed, "\(context): <\(tag)> missing")
        }
        return node
    }

    /// Binary content of child `tag`, which must be exactly `count` bytes when given.
    func requiredBytes(_ tag: String, count: Int? = nil, in context: String) throws -> Data {
        let node = try required(tag, in: context)
        guard let bytes = node.bytes, count.map({ bytes.count == $0 }) ?? true else {
            throw WAClientError(.stanzaMalformed, "\(context): <\(tag)> has \(node.bytes?.count ?? 0) bytes, want \(count ?? 0)")
        }
        return Data(bytes)
    }

    /// Attribute `key` as a JID, or `client.stanza_malformed`.
    func requiredJID(_ key: String, in context: String) throws -> JID {
        guard let jid = jid(key) else { throw WAClientError(.stanzaMalformed, "\(context): attribute \(key) missing or not a JID") }
        return jid
    }

    /// Attribute `key` as text, or `client.stanza_malformed`.
    func requiredString(_ key: String, in context: String) throws -> String {
        guard let value = string(key), !value.isEmpty else {
            throw WAClientError(.stanzaMalformed, "\(context): attribute \(key) missing")
        }
        return value
    }
}

/// Big-endian fixed-width integers as WhatsApp writes them in key stanzas.
enum BigEndianBytes {
    static func encode(_ value: UInt32, width: Int) -> Data {
        Data((0..<width).reversed().map { UInt8(truncatingIfNeeded: value >> (8 * UInt32($0))) })
    }

    static func decode(_ bytes: some DataProtocol) -> UInt32 {
        bytes.reduce(UInt32(0)) { ($0 << 8) | UInt32($1) }
    }
}

/// `<iq>` envelopes for the messaging queries; the connection actor owns ids and timeouts.
enum IQStanza {
    static func request(id: String, type: String, xmlns: String, children: [Node]) -> Node {
        Node("iq", attributes: ["id": .string(id), "type": .string(type), "xmlns": .string(xmlns), "to": .jid(JID.serverJID)],
             children: children)
    }

    /// `<iq type=result id from=s.whatsapp.net>` answering `query`.
    static func result(to query: Node, children: [Node]) -> Node {
        Node("iq", attributes: ["id": .string(query.string("id") ?? ""), "type": "result", "from": .jid(JID.serverJID)],
             children: children)
    }

    /// Throws `client.server_error` for an `<iq type=error>`.
    static func checkResult(_ answer: Node, _ ctx: String) throws {
        if answer.tag == "iq", answer.string("type") == "error" {
            let error = answer.child("error")
            throw WAClientError(.serverError, "\(ctx): iq error \(error?.string("code") ?? "?") \(error?.string("text") ?? "")")
        }
    }
}
