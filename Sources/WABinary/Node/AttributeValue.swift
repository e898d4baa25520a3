/// An attribute value: text, or a JID (which the wire encodes compactly).
public enum AttributeValue: Sendable, Hashable, CustomStringConvertible, ExpressibleByStringLiteral {
    case string(String)
    case jid(JID)

    public init(stringLiteral value: String) { self = .string(value) }

    /// The value as text (a JID in its text form).
    public var text: String {
        switch self {
        case .string(let s): return s
        case .jid(let j): return j.description
        }
    }

    public var description: String { text }
}
