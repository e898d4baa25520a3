import WACrypto

/// A peer's identity key changed (reinstall, new phone, or an attacker).
/// Only public keys, so it is safe to log and to hand to the bridge as an event.
public struct IdentityChange: Sendable, Hashable {
    public var address: SignalAddress
    public var previousKey: Curve25519PublicKey?
    public var newKey: Curve25519PublicKey

    public init(address: SignalAddress, previousKey: Curve25519PublicKey?, newKey: Curve25519PublicKey) {
        self.address = address
        self.previousKey = previousKey
        self.newKey = newKey
    }
}
