// Codes of app-state sync (WAClient/AppState). Messages never carry key bytes or values.
extension WAClientError.Code {
    /// A `w:sync:app:state` answer, patch, snapshot or mutation was malformed or over a bound.
    public static let appStateMalformed = WAClientError.Code(rawValue: "client.app_state_malformed")
    /// A mutation's value MAC did not verify.
    public static let appStateValueMACMismatch = WAClientError.Code(rawValue: "client.app_state_value_mac_mismatch")
    /// A mutation's index MAC did not verify.
    public static let appStateIndexMACMismatch = WAClientError.Code(rawValue: "client.app_state_index_mac_mismatch")
    /// The LTHash after a patch or snapshot did not give its snapshot MAC.
    public static let appStateSnapshotMACMismatch = WAClientError.Code(rawValue: "client.app_state_snapshot_mac_mismatch")
    /// A patch's patch MAC did not verify.
    public static let appStatePatchMACMismatch = WAClientError.Code(rawValue: "client.app_state_patch_mac_mismatch")
    /// A value did not decrypt (AES-CBC) after its MAC verified.
    public static let appStateDecryptFailed = WAClientError.Code(rawValue: "client.app_state_decrypt_failed")
    /// A patch or mutation names a sync key we do not hold (it has been requested from the phone).
    public static let appStateKeyMissing = WAClientError.Code(rawValue: "client.app_state_key_missing")
    /// The server answered the sync iq with an error.
    public static let appStateFetchFailed = WAClientError.Code(rawValue: "client.app_state_fetch_failed")
    /// An external blob (a snapshot or a patch's mutations) did not download, was over its bound,
    /// failed its hashes or media MAC, or was not the protobuf it should be.
    public static let appStateExternalFailed = WAClientError.Code(rawValue: "client.app_state_external_failed")
}
