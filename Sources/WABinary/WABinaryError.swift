/// The one error type of the WABinary module (binary node codec and JIDs).
///
/// `code` is a stable string (`binary.truncated`) for logs, metrics and error
/// bodies; `message` says what exactly was wrong and, for the decoder, where.
public struct WABinaryError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        // Decoding.
        /// The input ended inside a value, or a length points past its end.
        public static let truncated = Code(rawValue: "binary.truncated")
        /// Bytes are left over after the top-level node.
        public static let trailingData = Code(rawValue: "binary.trailing_data")
        /// A byte is not a token or tag the format defines.
        public static let invalidToken = Code(rawValue: "binary.invalid_token")
        /// A node does not start with a list tag, or its list is empty, or its tag is not a string.
        public static let invalidNode = Code(rawValue: "binary.invalid_node")
        /// A string was expected (tag, attribute key, JID part) and something else came.
        public static let expectedString = Code(rawValue: "binary.expected_string")
        /// A nibble/hex packed string holds a digit outside its alphabet.
        public static let invalidPacked = Code(rawValue: "binary.invalid_packed")
        /// A raw string or attribute value is not valid UTF-8.
        public static let invalidUTF8 = Code(rawValue: "binary.invalid_utf8")
        /// Nesting is deeper than `DecoderLimits.maxDepth`.
        public static let tooDeep = Code(rawValue: "binary.too_deep")
        /// A list or attribute count is over a limit (the decoder's or the format's).
        public static let tooLarge = Code(rawValue: "binary.too_large")
        /// The frame is compressed; decompress before decoding.
        public static let compressed = Code(rawValue: "binary.compressed")

        // JIDs (parsing, validation, and JIDs the wire format cannot carry).
        public static let invalidJID = Code(rawValue: "binary.invalid_jid")
    }

    public var code: Code
    public var message: String
    /// Byte offset in the decoder's input where the problem was found, when decoding.
    public var offset: Int?

    public init(code: Code, message: String, offset: Int? = nil) {
        self.code = code
        self.message = message
        self.offset = offset
    }

    public var description: String {
        if let offset { return "\(code.rawValue) at \(offset): \(message)" }
        return "\(code.rawValue): \(message)"
    }
}
