/// Bounds the decoder enforces on untrusted input, on top of the input's own
/// length (no length is trusted before it is checked against the bytes left).
public struct DecoderLimits: Sendable, Hashable {
    /// Deepest nesting of nodes inside nodes (the top node is depth 0).
    public var maxDepth: Int
    /// Most children one node may have.
    public var maxChildren: Int
    /// Most attributes one node may have.
    public var maxAttributes: Int
    /// Most nodes in one decoded tree. A node costs 3 input bytes but about
    /// a hundred bytes of memory, so this caps what a large frame (up to
    /// 16 MiB) can make the decoder hold.
    public var maxNodes: Int

    public init(maxDepth: Int = 64, maxChildren: Int = 65_535, maxAttributes: Int = 1_024, maxNodes: Int = 250_000) {
        self.maxDepth = maxDepth
        self.maxChildren = maxChildren
        self.maxAttributes = maxAttributes
        self.maxNodes = maxNodes
    }

    /// Generous for any real stanza: WhatsApp nests a handful of levels deep.
    public static let `default` = DecoderLimits()
}
