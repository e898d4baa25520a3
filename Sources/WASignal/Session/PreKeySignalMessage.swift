import Foundation
import WACrypto
import WAProto

/// A session-opening message (`<enc type="pkmsg">`): version byte ‖
/// protobuf carrying the initiator's X3DH parameters and a framed
/// SignalMessage. The initiator repeats it on every message until the
/// responder's first answer arrives.
struct PreKeySignalMessage: Sendable {
    var registrationID: UInt32
    var preKeyID: UInt32?
    var signedPreKeyID: UInt32
    var baseKey: Curve25519PublicKey
    var identityKey: Curve25519PublicKey
    var message: SignalMessage
    var serialized: Data

    init(
        registrationID: UInt32, preKeyID: UInt32?, signedPreKeyID: UInt32, baseKey: Curve25519PublicKey,
        identityKey: Curve25519PublicKey, message: SignalMessage
    ) {
        var proto = SignalWire_PreKeySignalMessage()
        proto.registrationID = registrationID
        if let preKeyID { proto.preKeyID = preKeyID }
        proto.signedPreKeyID = signedPreKeyID
        proto.baseKey = baseKey.signalSerialized
        proto.identityKey = identityKey.signalSerialized
        proto.message = message.serialized
        self.registrationID = registrationID
        self.preKeyID = preKeyID
        self.signedPreKeyID = signedPreKeyID
        self.baseKey = baseKey
        self.identityKey = identityKey
        self.message = message
        self.serialized = Data([SignalConstants.versionByte]) + (try! proto.serializedData())
    }

    init(serialized bytes: Data) throws {
        let bytes = Data(bytes)
        guard bytes.count > 1 else { throw SignalError(.invalidMessage, "prekey message is empty") }
        try SignalMessage.checkVersion(bytes[bytes.startIndex])
        let proto: SignalWire_PreKeySignalMessage
        do { proto = try SignalWire_PreKeySignalMessage(serializedBytes: bytes.subdata(in: 1..<bytes.count)) } catch {
            throw SignalError(.invalidMessage, "prekey message protobuf does not parse")
        }
        guard proto.hasSignedPreKeyID, proto.hasBaseKey, proto.hasIdentityKey, proto.hasMessage else {
            throw SignalError(.invalidMessage, "prekey message lacks signed prekey id, base key, identity or message")
        }
        self.registrationID = proto.registrationID
        self.preKeyID = proto.hasPreKeyID ? proto.preKeyID : nil
        self.signedPreKeyID = proto.signedPreKeyID
        self.baseKey = try Curve25519PublicKey(signalKey: proto.baseKey)
        self.identityKey = try Curve25519PublicKey(signalKey: proto.identityKey)
        self.message = try SignalMessage(serialized: proto.message)
        self.serialized = bytes
    }
}
