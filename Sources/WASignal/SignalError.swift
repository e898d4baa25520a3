import Foundation
import WACrypto

/// The one error type of the WASignal module.
///
/// `code` is a stable string (`signal.invalid_mac`) for logs, metrics and
/// error bodies; `message` explains the case in words and never contains key
/// material. An identity change carries `identityChange` (public keys only) so
/// the caller can show it and decide whether to accept the new key.
public struct SignalError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// A message's MAC did not verify: altered bytes, wrong session or wrong keys.
        public static let invalidMAC = Code(rawValue: "signal.invalid_mac")
        /// The peer's identity key differs from the one stored for that address.
        public static let untrustedIdentity = Code(rawValue: "signal.untrusted_identity")
        /// The message key for this counter/iteration was already used (a replay).
        public static let duplicateMessage = Code(rawValue: "signal.duplicate_message")
        /// No session (or no usable state) exists for the address.
        public static let noSession = Code(rawValue: "signal.no_session")
        /// No sender key state for the group sender (or for that key id).
        public static let noSenderKey = Code(rawValue: "signal.no_sender_key")
        /// The version byte is not protocol v3.
        public static let invalidVersion = Code(rawValue: "signal.invalid_version")
        /// The bytes are not a well-formed message (framing, protobuf, missing fields, padding).
        public static let invalidMessage = Code(rawValue: "signal.invalid_message")
        /// A key had the wrong form.
        public static let invalidKey = Code(rawValue: "signal.invalid_key")
        /// A prekey or signed prekey id the message names is not in our store.
        public static let invalidKeyID = Code(rawValue: "signal.invalid_key_id")
        /// A signature (signed prekey, sender key message) did not verify.
        public static let invalidSignature = Code(rawValue: "signal.invalid_signature")
        /// The counter is further ahead than the skipped-key bound allows.
        public static let tooFarInFuture = Code(rawValue: "signal.too_far_in_future")
        /// A stored record could not be read back.
        public static let corruptRecord = Code(rawValue: "signal.corrupt_record")
    }

    public var code: Code
    public var message: String
    /// Set for `signal.untrusted_identity`.
    public var identityChange: IdentityChange?

    public init(_ code: Code, _ message: String, identityChange: IdentityChange? = nil) {
        self.code = code
        self.message = message
        self.identityChange = identityChange
    }

    public var description: String { "\(code.rawValue): \(message)" }
}
