import Foundation
import WABinary
import WACrypto
import WAProto

/// Verifies the `<device-identity>` (ADVSignedDeviceIdentity) a companion
/// device sends with a pkmsg, before its session is accepted. Written by hand
/// (no library does this): the same ADV checks as pairing, seen from a peer.
///
/// * `accountSignature` by `accountSignatureKey` over `06 00` (`06 05` for a
///   hosted account) ‖ details ‖ the sender's identity key (from the pkmsg);
/// * `deviceSignature` by the sender's identity key over `06 01` ‖ details ‖
///   its identity key ‖ `accountSignatureKey`;
/// * `accountSignatureKey` is the identity of the user's primary device
///   (device 0) when we know that identity.
///
/// A forged or broken identity throws `client.device_identity_invalid`; the
/// message is then not decrypted (no session with the forger is opened).
enum DeviceIdentityCheck {
    static func verify(_ bytes: Data, senderIdentity: Curve25519PublicKey, primaryIdentity: Curve25519PublicKey?) throws(WAClientError) {
        func refuse(_ why: String) -> WAClientError { WAClientError(.deviceIdentityInvalid, "device identity: \(why)") }
        guard let signed = try? WAAdv_ADVSignedDeviceIdentity(serializedBytes: bytes) else { throw refuse("does not parse") }
        guard signed.accountSignatureKey.count == 32,
              let accountKey = try? Curve25519PublicKey(rawRepresentation: signed.accountSignatureKey) else {
            throw refuse("no account signature key")
        }
        guard let details = try? WAAdv_ADVDeviceIdentity(serializedBytes: signed.details) else { throw refuse("details do not parse") }
        let identity = senderIdentity.rawRepresentation
        let prefix = details.accountType == .hosted ? Pairing.hostedAccountSignaturePrefix : Pairing.accountSignaturePrefix
        guard XEdDSA.verify(signed.accountSignature, for: prefix + signed.details + identity, publicKey: accountKey) else {
            throw refuse("account signature invalid")
        }
        let deviceMessage = Pairing.deviceSignaturePrefix + signed.details + identity + signed.accountSignatureKey
        guard XEdDSA.verify(signed.deviceSignature, for: deviceMessage, publicKey: senderIdentity) else {
            throw refuse("device signature invalid")
        }
        if let primaryIdentity, primaryIdentity != accountKey { throw refuse("account key is not the primary device's identity") }
    }

    /// The sender's identity key from a pkmsg (version byte ‖ PreKeySignalMessage).
    static func senderIdentity(ofPreKeyMessage ciphertext: Data) -> Curve25519PublicKey? {
        guard ciphertext.count > 1, let proto = try? SignalWire_PreKeySignalMessage(serializedBytes: ciphertext.dropFirst()) else {
            return nil
        }
        let key = proto.identityKey
        return try? Curve25519PublicKey(rawRepresentation: key.count == 33 ? key.dropFirst() : key)
    }
}
