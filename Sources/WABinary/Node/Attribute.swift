/// One `key=value` pair of a node. Nodes keep attributes in wire order, so a
/// decoded node re-encodes to the same bytes.
public struct Attribute: Sendable, Hashable {
    public var key: String
    public var value: AttributeValue

    public init(_ key: String, _ value: AttributeValue) {
        self.key = key
        self.value = value
    }
}
