// Codes of the media path (media_conn, upload, download, decryption). Each
// names what a user can act on: a tampered or truncated blob, a size bound,
// a media host that refused or was unreachable.
extension WAClientError.Code {
    /// The blob's SHA-256 is not the message's `fileEncSha256`, or the plaintext's is not `fileSha256`.
    public static let mediaHashMismatch = Self(rawValue: "client.media_hash_mismatch")
    /// The blob's 10-byte HMAC-SHA256 does not match (altered ciphertext or wrong media key).
    public static let mediaBadMAC = Self(rawValue: "client.media_bad_mac")
    /// The file is larger than the configured bound (upload or download).
    public static let mediaTooLarge = Self(rawValue: "client.media_too_large")
    /// A media message lacks its key, hashes or path, or is not a media message.
    public static let mediaInfoInvalid = Self(rawValue: "client.media_info_invalid")
    /// The `<media_conn>` answer had no auth token or no host.
    public static let mediaConnInvalid = Self(rawValue: "client.media_conn_invalid")
    /// The media host answered an error status, an unreadable body, or could not be reached.
    public static let mediaTransferFailed = Self(rawValue: "client.media_transfer_failed")
}
