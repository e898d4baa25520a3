/// What a node holds after its attributes.
///
/// On the wire content may also be a token, packed string or JID; the decoder
/// turns those into `.bytes` of their UTF-8 text, which is how WhatsApp's own
/// clients treat text content. An empty content list decodes as `.none` when
/// sent as byte 0 and as `.nodes([])` when sent as a zero-length list.
public enum NodeContent: Sendable, Hashable {
    case none
    case nodes([Node])
    case bytes([UInt8])
}
