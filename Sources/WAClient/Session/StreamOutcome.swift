import WABinary

/// Reads `<stream:error>` and `<failure>` stanzas into a `CloseReason`.
public enum StreamOutcome {
    /// `<stream:error code=515/>`, `<stream:error><conflict type=replaced/>`,
    /// `<stream:error code=401><conflict type=device_removed/>`; anything else is a
    /// retryable stream error named by its code (or its first child's tag).
    public static func streamError(_ node: Node) -> CloseReason {
        let code = node.string("code") ?? ""
        if let conflict = node.child("conflict") {
            switch conflict.string("type") {
            case "replaced": return .replaced
            case "device_removed": return .deviceRemoved
            default: break
            }
        }
        if code == "515" { return .restartRequired }
        // A bare 401 (no device_removed conflict) is not a logout: wiping keys on it would be
        // irreversible, so it is retried like any other unknown stream error.
        if code.isEmpty, let first = node.children.first?.tag { return .streamError(code: first) }
        return .streamError(code: code.isEmpty ? "unknown" : code)
    }

    /// `<failure reason=402 code=… expire=…/>`.
    public static func failure(_ node: Node) -> CloseReason {
        .failure(LoginFailure(reason: node.int("reason") ?? 0, banCode: node.int("code"), expiresIn: node.int("expire")))
    }
}
