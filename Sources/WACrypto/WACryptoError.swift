/// The one error type of the WACrypto module.
///
/// `code` is a stable string (`crypto.bad_mac`) for logs, metrics and error
/// bodies; `message` explains the case in words. Messages never contain key
/// material.
public struct WACryptoError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// A MAC (media HMAC, GCM tag) did not match: data was altered or the key is wrong.
        public static let badMAC = Code(rawValue: "crypto.bad_mac")
        /// A signature did not verify.
        public static let badSignature = Code(rawValue: "crypto.bad_signature")
        /// A key had the wrong length or form (e.g. a 33-byte key without 0x05).
        public static let invalidKey = Code(rawValue: "crypto.invalid_key")
        /// An input (IV, nonce, salt, ciphertext) had an impossible length.
        public static let invalidLength = Code(rawValue: "crypto.invalid_length")
        /// CBC padding was not valid PKCS#7.
        public static let badPadding = Code(rawValue: "crypto.bad_padding")
        /// A Diffie-Hellman result was all zero (the peer sent a low-order point).
        public static let weakSharedSecret = Code(rawValue: "crypto.weak_shared_secret")
        /// A pairing code was not 8 characters of the pairing alphabet.
        public static let invalidPairingCode = Code(rawValue: "crypto.invalid_pairing_code")
        /// The underlying library refused the operation for another reason.
        public static let library = Code(rawValue: "crypto.library_error")
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}
