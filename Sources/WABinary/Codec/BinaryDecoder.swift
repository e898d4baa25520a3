/// Decodes WhatsApp's binary XML (dictionary version 3) from untrusted bytes.
///
/// Every read is checked against the bytes left before it happens, lengths
/// are checked before anything is allocated for them, and nesting is bounded
/// by `DecoderLimits`, so hostile input costs at most time linear in its size
/// and ends in a `WABinaryError`, never a trap.
public struct BinaryDecoder: Sendable {
    private let bytes: [UInt8]
    private var index: Int
    private let limits: DecoderLimits

    private init(_ bytes: [UInt8], start: Int, limits: DecoderLimits) {
        self.bytes = bytes
        self.index = start
        self.limits = limits
    }

    /// Decodes one node that must span all of `bytes` (no transport flag byte).
    public static func decode(_ bytes: [UInt8], limits: DecoderLimits = .default) throws(WABinaryError) -> Node {
        var decoder = BinaryDecoder(bytes, start: 0, limits: limits)
        return try decoder.readTopNode()
    }

    /// Decodes a transport frame's plaintext: the flag byte, then the node.
    /// A compressed frame (flag bit 0x02) is refused with `binary.compressed`;
    /// the caller inflates it and calls `decode`.
    public static func decodeFrame(_ bytes: [UInt8], limits: DecoderLimits = .default) throws(WABinaryError) -> Node {
        guard let flag = bytes.first else {
            throw WABinaryError(code: .truncated, message: "empty frame", offset: 0)
        }
        guard flag & 0x02 == 0 else {
            throw WABinaryError(code: .compressed, message: "frame is zlib-compressed (flag \(flag))", offset: 0)
        }
        var decoder = BinaryDecoder(bytes, start: 1, limits: limits)
        return try decoder.readTopNode()
    }

    // MARK: Nodes

    private mutating func readTopNode() throws(WABinaryError) -> Node {
        let node = try readNode(depth: 0)
        guard index == bytes.count else {
            throw error(.trailingData, "\(bytes.count - index) bytes after the node")
        }
        return node
    }

    private mutating func readNode(depth: Int) throws(WABinaryError) -> Node {
        guard depth <= limits.maxDepth else { throw error(.tooDeep, "nesting deeper than \(limits.maxDepth)") }
        let start = index
        let listTag = try readByte()
        guard let size = try readListSize(listTag), size > 0 else {
            throw WABinaryError(code: .invalidNode, message: "node does not start with a non-empty list", offset: start)
        }
        let attributeCount = (size - 1) / 2
        guard attributeCount <= limits.maxAttributes else {
            throw error(.tooLarge, "\(attributeCount) attributes, limit \(limits.maxAttributes)")
        }
        // Each attribute takes at least two bytes (key and value).
        guard attributeCount <= remaining / 2 else { throw error(.truncated, "\(attributeCount) attributes cannot fit") }

        let tagByte = try readByte()
        guard let tag = try readString(tagByte), !tag.isEmpty else {
            throw WABinaryError(code: .invalidNode, message: "node tag is not a non-empty string", offset: index - 1)
        }
        var attributes: [Attribute] = []
        attributes.reserveCapacity(attributeCount)
        for _ in 0..<attributeCount {
            let keyByte = try readByte()
            guard let key = try readString(keyByte) else {
                throw WABinaryError(code: .expectedString, message: "attribute key is not a string", offset: index - 1)
            }
            attributes.append(Attribute(key, try readAttributeValue()))
        }
        var content = NodeContent.none
        if size % 2 == 0 {
            content = try readContent(depth: depth)
        }
        return Node(tag, attributes, content: content)
    }

    /// Size of a list from its tag; nil if `tag` is not a list tag.
    private mutating func readListSize(_ tag: UInt8) throws(WABinaryError) -> Int? {
        switch tag {
        case Token.listEmpty: return 0
        case Token.list8: return Int(try readByte())
        case Token.list16: return try readUInt16()
        default: return nil
        }
    }

    private mutating func readContent(depth: Int) throws(WABinaryError) -> NodeContent {
        let tag = try readByte()
        switch tag {
        case Token.listEmpty:
            return .none
        case Token.list8, Token.list16:
            guard let count = try readListSize(tag) else { return .none }
            guard count <= limits.maxChildren else {
                throw error(.tooLarge, "\(count) children, limit \(limits.maxChildren)")
            }
            // The smallest node is 3 bytes (list8, size, tag token).
            guard count <= remaining / 3 else { throw error(.truncated, "\(count) children cannot fit") }
            var children: [Node] = []
            children.reserveCapacity(count)
            for _ in 0..<count {
                children.append(try readNode(depth: depth + 1))
            }
            return .nodes(children)
        case Token.binary8, Token.binary20, Token.binary32:
            return .bytes(try readBinary(tag))
        case Token.jidPair, Token.adJID, Token.fbJID, Token.interopJID:
            return .bytes(Array(try readJID(tag).description.utf8))
        default:
            guard let text = try readString(tag) else {
                throw WABinaryError(code: .invalidToken, message: "byte \(tag) cannot start content", offset: index - 1)
            }
            return .bytes(Array(text.utf8))
        }
    }

    private mutating func readAttributeValue() throws(WABinaryError) -> AttributeValue {
        let tag = try readByte()
        switch tag {
        case Token.jidPair, Token.adJID, Token.fbJID, Token.interopJID:
            return .jid(try readJID(tag))
        case Token.listEmpty:
            return .string("")
        default:
            guard let text = try readString(tag) else {
                throw WABinaryError(code: .expectedString, message: "attribute value is not a string or JID", offset: index - 1)
            }
            return .string(text)
        }
    }

    // MARK: Strings

    /// Reads the string that starts with `tag`. Returns nil when `tag` starts
    /// something else (a list or JID); throws for bytes that mean nothing.
    private mutating func readString(_ tag: UInt8) throws(WABinaryError) -> String? {
        switch tag {
        case Token.listEmpty, Token.list8, Token.list16,
            Token.jidPair, Token.adJID, Token.fbJID, Token.interopJID:
            return nil
        case Token.dictionary0...Token.dictionary3:
            let i = try readByte()
            guard let token = Token.double(dictionary: tag - Token.dictionary0, index: i) else {
                throw error(.invalidToken, "double-byte token \(tag)/\(i)")
            }
            return token
        case Token.binary8, Token.binary20, Token.binary32:
            let raw = try readBinary(tag)
            guard let text = String(validating: raw, as: UTF8.self) else {
                throw error(.invalidUTF8, "string is not UTF-8")
            }
            return text
        case Token.nibble8, Token.hex8:
            return try readPacked(hex: tag == Token.hex8)
        default:
            guard let token = Token.single(tag) else {
                throw WABinaryError(code: .invalidToken, message: "byte \(tag) is not a token", offset: index - 1)
            }
            return token
        }
    }

    private mutating func readPacked(hex: Bool) throws(WABinaryError) -> String {
        let header = try readByte()
        let count = Int(header & 0x7F)
        let odd = header & 0x80 != 0
        guard !(odd && count == 0) else { throw error(.invalidPacked, "odd flag on an empty packed string") }
        guard count <= remaining else { throw error(.truncated, "packed string of \(count) bytes") }
        var chars: [UInt8] = []
        chars.reserveCapacity(count * 2)
        for i in 0..<count {
            let byte = bytes[index + i]
            let last = i == count - 1
            for (n, nibble) in [byte >> 4, byte & 0x0F].enumerated() {
                // The low nibble of the last byte of an odd-length string is
                // padding: skip it whatever it holds.
                if odd && last && n == 1 { break }
                if hex {
                    chars.append(PackedString.hexChar(nibble))
                } else {
                    guard let c = PackedString.nibbleChar(nibble) else {
                        throw WABinaryError(code: .invalidPacked, message: "nibble \(nibble) not in alphabet", offset: index + i)
                    }
                    chars.append(c)
                }
            }
        }
        index += count
        return String(decoding: chars, as: UTF8.self)
    }

    private mutating func readBinary(_ tag: UInt8) throws(WABinaryError) -> [UInt8] {
        let length: Int
        switch tag {
        case Token.binary8: length = Int(try readByte())
        case Token.binary20: length = try readUInt20()
        default: length = try readUInt32()
        }
        guard length <= remaining else { throw error(.truncated, "\(length) bytes announced, \(remaining) left") }
        let slice = Array(bytes[index..<index + length])
        index += length
        return slice
    }

    // MARK: JIDs

    private mutating func readJID(_ tag: UInt8) throws(WABinaryError) -> JID {
        switch tag {
        case Token.jidPair:
            let userTag = try readByte()
            let user: String
            if userTag == Token.listEmpty {
                user = ""
            } else {
                guard let u = try readString(userTag) else { throw error(.invalidJID, "JID user is not a string") }
                user = u
            }
            let server = try readJIDString(what: "server")
            guard !server.isEmpty else { throw error(.invalidJID, "JID without server") }
            return JID(user: user, server: server)
        case Token.adJID:
            let domain = try readByte()
            let device = try readByte()
            let user = try readJIDString(what: "user")
            switch domain {
            case JID.lidDomain: return JID(user: user, device: UInt16(device), server: JID.lidServer)
            case JID.hostedDomain: return JID(user: user, device: UInt16(device), server: JID.hostedServer)
            case JID.hostedLIDDomain: return JID(user: user, device: UInt16(device), server: JID.hostedLIDServer)
            default: return JID(user: user, agent: domain, device: UInt16(device), server: JID.userServer)
            }
        case Token.fbJID:
            let user = try readJIDString(what: "user")
            let device = UInt16(try readUInt16())
            let server = try readJIDString(what: "server")
            guard server == JID.messengerServer else { throw error(.invalidJID, "FB JID on \(server)") }
            return JID(user: user, device: device, server: server)
        default:
            let user = try readJIDString(what: "user")
            let device = UInt16(try readUInt16())
            let integrator = UInt16(try readUInt16())
            let server = try readJIDString(what: "server")
            guard server == JID.interopServer else { throw error(.invalidJID, "interop JID on \(server)") }
            return JID(user: user, device: device, integrator: integrator, server: server)
        }
    }

    private mutating func readJIDString(what: String) throws(WABinaryError) -> String {
        let tag = try readByte()
        guard let s = try readString(tag) else { throw error(.invalidJID, "JID \(what) is not a string") }
        return s
    }

    // MARK: Bytes

    private var remaining: Int { bytes.count - index }

    private mutating func readByte() throws(WABinaryError) -> UInt8 {
        guard index < bytes.count else { throw error(.truncated, "input ends") }
        let b = bytes[index]
        index += 1
        return b
    }

    private mutating func readUInt16() throws(WABinaryError) -> Int {
        guard remaining >= 2 else { throw error(.truncated, "input ends inside a 16-bit number") }
        let v = Int(bytes[index]) << 8 | Int(bytes[index + 1])
        index += 2
        return v
    }

    private mutating func readUInt20() throws(WABinaryError) -> Int {
        guard remaining >= 3 else { throw error(.truncated, "input ends inside a 20-bit length") }
        let v = Int(bytes[index] & 0x0F) << 16 | Int(bytes[index + 1]) << 8 | Int(bytes[index + 2])
        index += 3
        return v
    }

    private mutating func readUInt32() throws(WABinaryError) -> Int {
        guard remaining >= 4 else { throw error(.truncated, "input ends inside a 32-bit length") }
        var v = 0
        for i in 0..<4 { v = v << 8 | Int(bytes[index + i]) }
        index += 4
        return v
    }

    private func error(_ code: WABinaryError.Code, _ message: String) -> WABinaryError {
        WABinaryError(code: code, message: message, offset: index)
    }
}
