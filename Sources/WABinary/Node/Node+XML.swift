/// XML-like text of a node for logs and test failures, e.g.
/// `<iq id="1" to="s.whatsapp.net" type="get"><ping/></iq>`.
/// Binary content prints as text when it is printable UTF-8, else as
/// `<!-- 32 bytes: 0a1b… -->`; long content is cut so logs stay small.
/// Not a real XML serializer: quotes and brackets inside values are escaped
/// only enough to keep lines readable.
extension Node: CustomStringConvertible {
    public var description: String { xmlString(indent: nil) }

    /// Multi-line form with `indent` spaces per level.
    public func xmlString(indent: Int? = 2) -> String {
        var out = ""
        write(to: &out, indent: indent, level: 0)
        return out
    }

    private static let maxShownBytes = 64

    private func write(to out: inout String, indent: Int?, level: Int) {
        let pad = indent.map { String(repeating: " ", count: $0 * level) } ?? ""
        out += pad + "<" + tag
        for attribute in attributes {
            out += " \(attribute.key)=\"\(Self.escape(attribute.value.text))\""
        }
        switch content {
        case .none:
            out += "/>"
        case .bytes(let bytes):
            out += ">" + Self.show(bytes) + "</\(tag)>"
        case .nodes(let children):
            out += ">"
            for child in children {
                if indent != nil { out += "\n" }
                child.write(to: &out, indent: indent, level: level + 1)
            }
            if indent != nil && !children.isEmpty { out += "\n" + pad }
            out += "</\(tag)>"
        }
    }

    private static func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "\"": out += "&quot;"
            case "<": out += "&lt;"
            case "&": out += "&amp;"
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }

    private static func show(_ bytes: [UInt8]) -> String {
        if bytes.count <= maxShownBytes, let text = String(validating: bytes, as: UTF8.self),
            text.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F })
        {
            return escape(text)
        }
        let digits = Array("0123456789abcdef")
        var hex = ""
        for b in bytes.prefix(maxShownBytes) {
            hex.append(digits[Int(b >> 4)])
            hex.append(digits[Int(b & 0x0F)])
        }
        let more = bytes.count > maxShownBytes ? "…" : ""
        return "<!-- \(bytes.count) bytes: \(hex)\(more) -->"
    }
}
