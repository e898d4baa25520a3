import Foundation
import WACrypto
import WAProto

/// A group message (`<enc type="skmsg">`): version byte ‖ protobuf (key id,
/// iteration, ciphertext) ‖ 64-byte XEdDSA signature by the sender's signing
/// key over everything before it.
struct SenderKeyMessage: Sendable {
    var keyID: UInt32
    var iteration: UInt32
    var ciphertext: Data
    var serialized: Data

    init(keyID: UInt32, iteration: UInt32, ciphertext: Data, signingKey: Curve25519PrivateKey) throws {
        var proto = SignalWire_SenderKeyMessage()
        proto.id = keyID
        proto.iteration = iteration
        proto.ciphertext = ciphertext
        var body = Data([SignalConstants.versionByte])
        body.append(try! proto.serializedData())
        body.append(try XEdDSA.sign(body, privateKey: signingKey))
        self.keyID = keyID
        self.iteration = iteration
        self.ciphertext = ciphertext
        self.serialized = body
    }

    init(serialized bytes: Data) throws {
        let bytes = Data(bytes)
        guard bytes.count > 1 + SignalConstants.signatureLength else {
            throw SignalError(.invalidMessage, "sender key message too short (\(bytes.count) bytes)")
        }
        try SignalMessage.checkVersion(bytes[0])
        let proto: SignalWire_SenderKeyMessage
        do {
            proto = try SignalWire_SenderKeyMessage(serializedBytes: bytes.subdata(in: 1..<(bytes.count - SignalConstants.signatureLength)))
        } catch {
            throw SignalError(.invalidMessage, "sender key message protobuf does not parse")
        }
        guard proto.hasID, proto.hasIteration, proto.hasCiphertext else {
            throw SignalError(.invalidMessage, "sender key message lacks key id, iteration or ciphertext")
        }
        self.keyID = proto.id
        self.iteration = proto.iteration
        self.ciphertext = proto.ciphertext
        self.serialized = bytes
    }

    func verifySignature(_ key: Curve25519PublicKey) throws {
        let split = serialized.count - SignalConstants.signatureLength
        guard XEdDSA.verify(serialized.subdata(in: split..<serialized.count), for: serialized.subdata(in: 0..<split), publicKey: key) else {
            throw SignalError(.invalidSignature, "sender key message signature does not verify")
        }
    }
}
