import Foundation
import WACrypto
import WAProto

/// Hands our sender key to a group member, sent inside a 1:1 Signal message
/// (WhatsApp: `Message.senderKeyDistributionMessage`, field 2). Version byte ‖
/// protobuf (key id, iteration, chain key seed, 33-byte signing public key).
public struct SenderKeyDistributionMessage: Sendable, Equatable {
    public var keyID: UInt32
    public var iteration: UInt32
    public var chainKey: Data
    public var signingKey: Curve25519PublicKey
    public var serialized: Data

    init(keyID: UInt32, iteration: UInt32, chainKey: Data, signingKey: Curve25519PublicKey) {
        var proto = SignalWire_SenderKeyDistributionMessage()
        proto.id = keyID
        proto.iteration = iteration
        proto.chainKey = chainKey
        proto.signingKey = signingKey.signalSerialized
        self.keyID = keyID
        self.iteration = iteration
        self.chainKey = chainKey
        self.signingKey = signingKey
        self.serialized = Data([SignalConstants.versionByte]) + (try! proto.serializedData())
    }

    public init(serialized bytes: some DataProtocol) throws {
        let bytes = Data(bytes)
        guard bytes.count > 1 else { throw SignalError(.invalidMessage, "sender key distribution message is empty") }
        try SignalMessage.checkVersion(bytes[0])
        let proto: SignalWire_SenderKeyDistributionMessage
        do { proto = try SignalWire_SenderKeyDistributionMessage(serializedBytes: bytes.subdata(in: 1..<bytes.count)) } catch {
            throw SignalError(.invalidMessage, "sender key distribution message protobuf does not parse")
        }
        guard proto.hasID, proto.hasIteration, proto.hasChainKey, proto.hasSigningKey, proto.chainKey.count == 32 else {
            throw SignalError(.invalidMessage, "sender key distribution message lacks a field or has a bad chain key")
        }
        self.keyID = proto.id
        self.iteration = proto.iteration
        self.chainKey = proto.chainKey
        self.signingKey = try Curve25519PublicKey(signalKey: proto.signingKey)
        self.serialized = bytes
    }
}
