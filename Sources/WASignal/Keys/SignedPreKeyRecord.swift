import Foundation
import WACrypto
import WAProto

/// The medium-term prekey, its public half signed (XEdDSA) by the identity
/// key over its 33-byte Signal form, as libsignal and WhatsApp do.
public struct SignedPreKeyRecord: Sendable {
    public let id: UInt32
    public let keyPair: Curve25519KeyPair
    public let signature: Data
    /// Milliseconds since 1970, as libsignal stores it.
    public let timestamp: UInt64

    public init(id: UInt32, keyPair: Curve25519KeyPair, signature: Data, timestamp: UInt64) {
        self.id = id
        self.keyPair = keyPair
        self.signature = signature
        self.timestamp = timestamp
    }

    /// Makes and signs a new signed prekey.
    public static func generate(id: UInt32, identity: IdentityKeyPair, timestamp: UInt64? = nil) throws -> SignedPreKeyRecord {
        let pair = Curve25519KeyPair.generate()
        let signature = try XEdDSA.sign(pair.publicKey.signalSerialized, privateKey: identity.privateKey)
        let now = timestamp ?? UInt64(Date().timeIntervalSince1970 * 1000)
        return SignedPreKeyRecord(id: id, keyPair: pair, signature: signature, timestamp: now)
    }

    public init(serialized: some DataProtocol) throws {
        let proto: SignalStorage_SignedPreKeyRecordStructure
        do { proto = try SignalStorage_SignedPreKeyRecordStructure(serializedBytes: Data(serialized)) } catch {
            throw SignalError(.corruptRecord, "signed prekey record does not parse")
        }
        self.id = proto.id
        self.keyPair = try Curve25519KeyPair(signalPrivateKey: proto.privateKey)
        self.signature = proto.signature
        self.timestamp = proto.timestamp
    }

    public func serialized() -> Data {
        var proto = SignalStorage_SignedPreKeyRecordStructure()
        proto.id = id
        proto.publicKey = keyPair.publicKey.signalSerialized
        proto.privateKey = keyPair.privateKey.rawRepresentation
        proto.signature = signature
        proto.timestamp = timestamp
        return try! proto.serializedData()
    }
}
