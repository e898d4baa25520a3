import Foundation
import WACrypto

/// What a peer publishes so others can open a session with it without it
/// being online (WhatsApp hands these out in `<iq type=get><key>` answers).
public struct PreKeyBundle: Sendable {
    public var registrationID: UInt32
    public var deviceID: UInt32
    /// A one-time prekey; WhatsApp may run out of them, then the bundle has none.
    public var preKeyID: UInt32?
    public var preKey: Curve25519PublicKey?
    public var signedPreKeyID: UInt32
    public var signedPreKey: Curve25519PublicKey
    public var signedPreKeySignature: Data
    public var identityKey: Curve25519PublicKey

    public init(
        registrationID: UInt32, deviceID: UInt32, preKeyID: UInt32?, preKey: Curve25519PublicKey?,
        signedPreKeyID: UInt32, signedPreKey: Curve25519PublicKey, signedPreKeySignature: Data,
        identityKey: Curve25519PublicKey
    ) {
        self.registrationID = registrationID
        self.deviceID = deviceID
        self.preKeyID = preKeyID
        self.preKey = preKey
        self.signedPreKeyID = signedPreKeyID
        self.signedPreKey = signedPreKey
        self.signedPreKeySignature = signedPreKeySignature
        self.identityKey = identityKey
    }
}
