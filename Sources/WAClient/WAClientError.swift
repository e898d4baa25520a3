import WACrypto

/// The one error type of the WAClient module.
///
/// `code` is a stable string (`client.noise_decrypt_failed`) for logs,
/// metrics and error bodies. Transport codes are listed here; features built
/// on the transport add theirs beside them. `underlying` keeps a WACrypto
/// error's own code when one caused this.
public struct WAClientError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        // Frames (3-byte length framing and the connection header).
        /// The peer's connection header was not `WA` 6 3 (or not what we expected).
        public static let badHeader = Code(rawValue: "client.frame_bad_header")
        /// A frame was longer than the limit (2^24 - 1 or the configured one).
        public static let frameTooLarge = Code(rawValue: "client.frame_too_large")

        // Noise handshake and transport.
        /// A handshake message could not be parsed, or was not the one expected now.
        public static let handshakeMalformed = Code(rawValue: "client.noise_handshake_malformed")
        /// A method was called in a state where it makes no sense (e.g. seal before the handshake).
        public static let invalidState = Code(rawValue: "client.noise_invalid_state")
        /// AES-GCM refused a frame: altered, reordered, or keys out of step.
        public static let decryptFailed = Code(rawValue: "client.noise_decrypt_failed")
        /// A Diffie-Hellman step failed (a low-order key from the peer).
        public static let keyAgreementFailed = Code(rawValue: "client.noise_key_agreement_failed")
        /// The 2^32 nonce space of one direction is used up; reconnect.
        public static let nonceExhausted = Code(rawValue: "client.noise_nonce_exhausted")

        // Server certificate chain.
        public static let certMalformed = Code(rawValue: "client.cert_malformed")
        public static let certBadSignature = Code(rawValue: "client.cert_bad_signature")
        public static let certIssuerMismatch = Code(rawValue: "client.cert_issuer_mismatch")
        /// The leaf key is not the static key the server used in the handshake.
        public static let certKeyMismatch = Code(rawValue: "client.cert_key_mismatch")
        public static let certExpired = Code(rawValue: "client.cert_not_valid_now")

        // Transport plaintext.
        /// The payload was empty, had unknown flags, or did not inflate.
        public static let payloadMalformed = Code(rawValue: "client.payload_malformed")
        /// Inflating a compressed payload would exceed the size bound.
        public static let payloadTooLarge = Code(rawValue: "client.payload_too_large")
    }

    public var code: Code
    public var message: String
    /// The WACrypto error code behind this one, when there was one.
    public var underlying: WACryptoError.Code?

    public init(_ code: Code, _ message: String, underlying: WACryptoError.Code? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    public var description: String {
        "\(code.rawValue): \(message)" + (underlying.map { " (\($0.rawValue))" } ?? "")
    }
}
