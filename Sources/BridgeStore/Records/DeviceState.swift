/// A device's lifecycle state, as the contract names it.
public enum DeviceState: String, Sendable, Codable, CaseIterable {
    case disconnected, connecting, connected, reconnecting
    case loggedOut = "logged_out"
}
