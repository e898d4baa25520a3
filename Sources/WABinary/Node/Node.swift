/// A binary-XML stanza: `<tag key=value …>content</tag>`.
public struct Node: Sendable, Hashable {
    public var tag: String
    /// Attributes in wire order. Keys are expected to be unique; lookups
    /// return the first match.
    public var attributes: [Attribute]
    public var content: NodeContent

    public init(_ tag: String, _ attributes: [Attribute] = [], content: NodeContent = .none) {
        self.tag = tag
        self.attributes = attributes
        self.content = content
    }

    /// Builds a node from a dictionary literal of attributes; order follows
    /// the literal.
    public init(_ tag: String, attributes: KeyValuePairs<String, AttributeValue>, content: NodeContent = .none) {
        self.init(tag, attributes.map { Attribute($0.key, $0.value) }, content: content)
    }

    public init(_ tag: String, attributes: KeyValuePairs<String, AttributeValue> = [:], children: [Node]) {
        self.init(tag, attributes: attributes, content: .nodes(children))
    }

    // MARK: Attributes

    /// The value of attribute `key`; setting nil removes it, setting a new key appends it.
    public subscript(key: String) -> AttributeValue? {
        get { attributes.first(where: { $0.key == key })?.value }
        set {
            if let i = attributes.firstIndex(where: { $0.key == key }) {
                if let newValue { attributes[i].value = newValue } else { attributes.remove(at: i) }
            } else if let newValue {
                attributes.append(Attribute(key, newValue))
            }
        }
    }

    /// Attribute `key` as text (a JID value in its text form).
    public func string(_ key: String) -> String? { self[key]?.text }

    /// Attribute `key` as a JID: a JID value as is, a text value parsed.
    public func jid(_ key: String) -> JID? {
        switch self[key] {
        case .jid(let j): return j
        case .string(let s): return try? JID(parsing: s)
        case nil: return nil
        }
    }

    /// Attribute `key` as a decimal integer.
    public func int(_ key: String) -> Int? { string(key).flatMap { Int($0) } }

    // MARK: Content

    /// Child nodes (empty unless the content is a list).
    public var children: [Node] {
        if case .nodes(let nodes) = content { return nodes }
        return []
    }

    /// Children with the given tag.
    public func children(_ tag: String) -> [Node] { children.filter { $0.tag == tag } }

    /// The first child with the given tag.
    public func child(_ tag: String) -> Node? { children.first(where: { $0.tag == tag }) }

    /// Follows a path of tags through first matching children: `node.child(path: "usync", "list")`.
    public func child(path tags: String...) -> Node? {
        var node = self
        for tag in tags {
            guard let next = node.child(tag) else { return nil }
            node = next
        }
        return node
    }

    /// Binary content, if any.
    public var bytes: [UInt8]? {
        if case .bytes(let b) = content { return b }
        return nil
    }

    /// Binary content decoded as UTF-8 text, if it is valid.
    public var text: String? { bytes.flatMap { String(validating: $0, as: UTF8.self) } }
}
