import WABinary

/// Reads `<stream:error>` and `<failure>` stanzas into a `CloseReason`.
public enum StreamOutcome {
    /// `<stream:error code=515/>`, `<stream:error><conflict type=replaced/>`,
    /// `<stream:error code=401><conflict type=device_removed/>`, others by code.
    public static func streamError(_ node: Node) -> CloseReason {
        let code = node.string("code") ?? ""
        if let conflict = node.child("conflict") {
            switch conflict.string("type") {
            case "replaced": return .replaced
            case "device_removed": return .deviceRemoved
            default: break
            }
        }
        switch code {
        case "515": return .restartRequired
        case "401": return .deviceRemoved
        default:
            if node.child("ack") != nil || node.child("xml-not-well-formed") != nil {
                return .streamError(code: code.isEmpty ? node.children.first?.tag ?? "unknown" : code)
            }
            return .streamError(code: code.isEmpty ? "unknown" : code)
        }
    }

    /// `<failure reason=402 code=… expire=…/>`.
    public static func failure(_ node: Node) -> CloseReason {
        .failure(LoginFailure(reason: node.int("reason") ?? 0, banCode: node.int("code"), expiresIn: node.int("expire")))
    }
}
