/// Encodes nodes to WhatsApp's binary XML (dictionary version 3).
///
/// A node is a list: tag, then key/value pairs, then content if any. Strings
/// are written in the shortest form that fits, in this order: single-byte
/// token, double-byte token, nibble-packed, hex-packed, raw bytes.
public struct BinaryEncoder: Sendable {
    private var out: [UInt8] = []

    private init(capacity: Int) { out.reserveCapacity(capacity) }

    /// The node's bytes, without the transport flag byte.
    public static func encode(_ node: Node) throws(WABinaryError) -> [UInt8] {
        var encoder = BinaryEncoder(capacity: 128)
        try encoder.writeNode(node)
        return encoder.out
    }

    /// The node's bytes preceded by the transport flag byte 0 (uncompressed),
    /// ready for the Noise transport.
    public static func encodeFrame(_ node: Node) throws(WABinaryError) -> [UInt8] {
        var encoder = BinaryEncoder(capacity: 128)
        encoder.out.append(0)
        try encoder.writeNode(node)
        return encoder.out
    }

    private mutating func writeNode(_ node: Node) throws(WABinaryError) {
        guard !node.tag.isEmpty else { throw WABinaryError(code: .invalidNode, message: "empty tag") }
        let hasContent = node.content != .none
        let size = 1 + 2 * node.attributes.count + (hasContent ? 1 : 0)
        try writeListStart(size)
        try writeString(node.tag)
        for attribute in node.attributes {
            try writeString(attribute.key)
            switch attribute.value {
            case .string(let s): try writeString(s)
            case .jid(let j): try writeJID(j)
            }
        }
        switch node.content {
        case .none:
            break
        case .bytes(let bytes):
            try writeBytes(bytes)
        case .nodes(let children):
            // An empty list is written as list8 of size 0 (not byte 0) so that
            // it decodes back to `.nodes([])` rather than `.none`.
            try writeListStart(children.count, emptyAsList: true)
            for child in children { try writeNode(child) }
        }
    }

    private mutating func writeListStart(_ size: Int, emptyAsList: Bool = false) throws(WABinaryError) {
        if size == 0 && !emptyAsList {
            out.append(Token.listEmpty)
        } else if size < 256 {
            out.append(Token.list8)
            out.append(UInt8(size))
        } else if size <= 0xFFFF {
            out.append(Token.list16)
            out.append(UInt8(size >> 8))
            out.append(UInt8(size & 0xFF))
        } else {
            throw WABinaryError(code: .tooLarge, message: "list of \(size) entries exceeds 65535")
        }
    }

    private mutating func writeBytes(_ bytes: [UInt8]) throws(WABinaryError) {
        try writeLength(bytes.count)
        out.append(contentsOf: bytes)
    }

    private mutating func writeLength(_ n: Int) throws(WABinaryError) {
        if n < 256 {
            out.append(Token.binary8)
            out.append(UInt8(n))
        } else if n < 1 << 20 {
            out.append(Token.binary20)
            out.append(UInt8((n >> 16) & 0x0F))
            out.append(UInt8((n >> 8) & 0xFF))
            out.append(UInt8(n & 0xFF))
        } else if n <= Int(Int32.max) {
            out.append(Token.binary32)
            out.append(UInt8((n >> 24) & 0xFF))
            out.append(UInt8((n >> 16) & 0xFF))
            out.append(UInt8((n >> 8) & 0xFF))
            out.append(UInt8(n & 0xFF))
        } else {
            throw WABinaryError(code: .tooLarge, message: "\(n) bytes exceed the binary32 limit")
        }
    }

    private mutating func writeString(_ s: String) throws(WABinaryError) {
        switch Token.index(of: s) {
        case .single(let i):
            out.append(i)
            return
        case .double(let d, let i):
            out.append(Token.dictionary0 + d)
            out.append(i)
            return
        case nil:
            break
        }
        let utf8 = s.utf8
        if PackedString.isNibble(utf8) {
            writePacked(utf8, tag: Token.nibble8, value: PackedString.nibbleValue)
        } else if PackedString.isHex(utf8) {
            writePacked(utf8, tag: Token.hex8, value: PackedString.hexValue)
        } else {
            try writeLength(utf8.count)
            out.append(contentsOf: utf8)
        }
    }

    private mutating func writePacked(_ utf8: String.UTF8View, tag: UInt8, value: (UInt8) -> UInt8) {
        let count = utf8.count
        out.append(tag)
        out.append(UInt8((count + 1) / 2) | (count % 2 == 1 ? 0x80 : 0))
        var high: UInt8? = nil
        for c in utf8 {
            if let h = high {
                out.append(h << 4 | value(c))
                high = nil
            } else {
                high = value(c)
            }
        }
        if let h = high { out.append(h << 4 | 0x0F) }
    }

    private mutating func writeJID(_ jid: JID) throws(WABinaryError) {
        switch jid.server {
        case JID.messengerServer:
            out.append(Token.fbJID)
            try writeString(jid.user)
            appendUInt16(jid.device)
            try writeString(jid.server)
        case JID.interopServer:
            out.append(Token.interopJID)
            try writeString(jid.user)
            appendUInt16(jid.device)
            appendUInt16(jid.integrator)
            try writeString(jid.server)
        case JID.hostedServer, JID.hostedLIDServer:
            try writeADJID(jid)
        case JID.userServer where jid.device > 0 || jid.agent > 0:
            try writeADJID(jid)
        case JID.lidServer where jid.device > 0 || jid.agent > 0:
            try writeADJID(jid)
        default:
            guard jid.device == 0, jid.agent == 0 else {
                throw WABinaryError(code: .invalidJID, message: "device or agent on \(jid.server) cannot be encoded: \(jid)")
            }
            guard !jid.server.isEmpty else { throw WABinaryError(code: .invalidJID, message: "JID without server") }
            out.append(Token.jidPair)
            if jid.user.isEmpty { out.append(Token.listEmpty) } else { try writeString(jid.user) }
            try writeString(jid.server)
        }
    }

    private mutating func writeADJID(_ jid: JID) throws(WABinaryError) {
        // The agent byte doubles as the domain (0 s.whatsapp.net, 1 lid,
        // 128 hosted, 129 hosted.lid), so raw agents may not use those values,
        // and only s.whatsapp.net has raw agents at all.
        if jid.agent > 0 {
            let isDomainValue = jid.agent == JID.lidDomain || jid.agent == JID.hostedDomain || jid.agent == JID.hostedLIDDomain
            guard jid.server == JID.userServer, !isDomainValue else {
                throw WABinaryError(code: .invalidJID, message: "agent \(jid.agent) cannot be encoded on \(jid.server)")
            }
        }
        guard jid.device <= 255 else {
            throw WABinaryError(code: .invalidJID, message: "device \(jid.device) does not fit an AD JID: \(jid)")
        }
        out.append(Token.adJID)
        out.append(jid.domainByte)
        out.append(UInt8(jid.device))
        try writeString(jid.user)
    }

    private mutating func appendUInt16(_ v: UInt16) {
        out.append(UInt8(v >> 8))
        out.append(UInt8(v & 0xFF))
    }
}
