import WACrypto

/// A peer's identity key changed (reinstall, new phone, or an attacker).
/// Only public keys, so it is safe to log and to hand to the bridge as an event.
public struct IdentityChange: Sendable, Hashable {
    public var address: SignalAddress
    public var previousKey: Curve25519PublicKey?
    /// Nil when the server announced the change (`<notification type=encrypt><identity/>`) before
    /// any message under the new key came: the sessions are dropped and the next bundle or pkmsg
    /// brings the key.
    public var newKey: Curve25519PublicKey?

    public init(address: SignalAddress, previousKey: Curve25519PublicKey?, newKey: Curve25519PublicKey?) {
        self.address = address
        self.previousKey = previousKey
        self.newKey = newKey
    }
}
