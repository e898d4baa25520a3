/// Bounds the decoder enforces on untrusted input, on top of the input's own
/// length (no length is trusted before it is checked against the bytes left).
public struct DecoderLimits: Sendable, Hashable {
    /// Deepest nesting of nodes inside nodes (the top node is depth 0).
    public var maxDepth: Int
    /// Most children one node may have.
    public var maxChildren: Int
    /// Most attributes one node may have.
    public var maxAttributes: Int

    public init(maxDepth: Int = 64, maxChildren: Int = 65_535, maxAttributes: Int = 1_024) {
        self.maxDepth = maxDepth
        self.maxChildren = maxChildren
        self.maxAttributes = maxAttributes
    }

    /// Generous for any real stanza: WhatsApp nests a handful of levels deep.
    public static let `default` = DecoderLimits()
}
