import WASignal

// Codes of the messaging building blocks (usync, prekeys, send, receive,
// receipts). Kept beside the transport codes in `WAClientError`; a Signal
// failure keeps its own code in the message text (`signal.invalid_mac`), never
// key material or message bodies.
extension WAClientError.Code {
    /// A stanza lacked a part the protocol requires, or a part had the wrong size.
    public static let stanzaMalformed = Self(rawValue: "client.stanza_malformed")
    /// A server answer was an `<iq type=error>` or carried an `<error>` for the item asked.
    public static let serverError = Self(rawValue: "client.server_error")
    /// A prekey bundle answer lacked a part (registration, identity, signed prekey…).
    public static let bundleIncomplete = Self(rawValue: "client.prekey_bundle_incomplete")
    /// A list was longer than its bound (devices, prekeys, receipt items…).
    public static let limitExceeded = Self(rawValue: "client.limit_exceeded")
    /// Signal could not encrypt for a device (no session and no bundle, untrusted identity…).
    public static let messageEncryptFailed = Self(rawValue: "client.message_encrypt_failed")
    /// Signal could not decrypt an `<enc>`; the message names the Signal code.
    public static let messageDecryptFailed = Self(rawValue: "client.message_decrypt_failed")
    /// The decrypted payload did not unpad or did not parse as a `Message`.
    public static let payloadInvalid = Self(rawValue: "client.message_payload_invalid")
    /// A send was asked for with nothing to send to, or to a JID of the wrong kind.
    public static let invalidRecipient = Self(rawValue: "client.invalid_recipient")
    /// A message to resend on a retry receipt is no longer in the recent-message cache.
    public static let unknownMessage = Self(rawValue: "client.unknown_message")
}

extension WAClientError {
    /// A Signal error as a client error of `code`, keeping Signal's code in the text.
    static func signal(_ code: Code, _ context: String, _ error: any Error) -> WAClientError {
        if let signal = error as? SignalError {
            return WAClientError(code, "\(context): \(signal.code.rawValue)")
        }
        if let client = error as? WAClientError { return client }
        return WAClientError(code, "\(context): \(type(of: error))")
    }
}

extension WAClientError.Code {
    /// The client was made without a `MessagingFeature`.
    public static let messagingDisabled = Self(rawValue: "client.messaging_disabled")
    /// No server `<ack>` for a sent message within the send timeout.
    public static let ackTimeout = Self(rawValue: "client.ack_timeout")
    /// A companion's `<device-identity>` on a pkmsg does not verify (forged or broken ADV signatures).
    public static let deviceIdentityInvalid = Self(rawValue: "client.device_identity_invalid")
}
