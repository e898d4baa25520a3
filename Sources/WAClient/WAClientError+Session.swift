extension WAClientError.Code {
    // Session life (connect, login, pairing, keepalive).
    /// An answer (IQ, handshake, connect) did not come within its bound.
    public static let timeout = WAClientError.Code(rawValue: "client.timeout")
    /// The device is logged out (unlinked, or the server refused its credentials); keys are wiped.
    public static let loggedOut = WAClientError.Code(rawValue: "client.logged_out")
    /// Another connection took over this device (`conflict type=replaced`); the client stopped for good.
    public static let replaced = WAClientError.Code(rawValue: "client.replaced")
    /// The account is banned or locked (`failure` 402, 403, 406).
    public static let banned = WAClientError.Code(rawValue: "client.banned")
    /// The server refuses this client version (`failure` 405).
    public static let outdated = WAClientError.Code(rawValue: "client.outdated")
    /// The server refused the login with a reason that is not retried (`failure` 400, 409, 415, 418, …).
    public static let loginRefused = WAClientError.Code(rawValue: "client.login_refused")
    /// There is no live, logged-in connection for this request.
    public static let notConnected = WAClientError.Code(rawValue: "client.not_connected")
    /// This process no longer owns the device (`WAClientConfiguration.ownership` said no): nothing
    /// more goes to WhatsApp in its name; another worker holds it now.
    public static let notOwner = WAClientError.Code(rawValue: "client.not_owner")
    /// The client was stopped by its owner.
    public static let stopped = WAClientError.Code(rawValue: "client.stopped")
    /// The link closed while a request was waiting.
    public static let connectionClosed = WAClientError.Code(rawValue: "client.connection_closed")
    /// A phone number for pairing-code login is not in international format.
    public static let invalidPhoneNumber = WAClientError.Code(rawValue: "client.invalid_phone_number")
    /// Every QR ref was shown and none was scanned.
    public static let qrTimeout = WAClientError.Code(rawValue: "client.qr_timeout")
    /// Pairing data from the server did not check out (HMAC, signature, key bundle).
    public static let pairingFailed = WAClientError.Code(rawValue: "client.pairing_failed")
    /// The server offered passkey linking (`passkey_prologue_request`), which this client does not do.
    public static let passkeyUnsupported = WAClientError.Code(rawValue: "client.passkey_unsupported")
    /// Login/pairing was requested for a device that is already registered, or the reverse.
    public static let alreadyLoggedIn = WAClientError.Code(rawValue: "client.already_logged_in")
    /// The server answered an IQ with `type=error`.
    public static let iqError = WAClientError.Code(rawValue: "client.iq_error")
    /// A bounded queue or table is full (pending IQs, waiters).
    public static let overloaded = WAClientError.Code(rawValue: "client.overloaded")
    /// The WebSocket could not be opened (DNS, TCP, TLS, HTTP upgrade).
    public static let connectFailed = WAClientError.Code(rawValue: "client.connect_failed")
    /// A stanza from the server could not be decoded.
    public static let badStanza = WAClientError.Code(rawValue: "client.bad_stanza")
    /// The device store failed.
    public static let store = WAClientError.Code(rawValue: "client.store")
}
