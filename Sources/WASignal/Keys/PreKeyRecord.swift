import Foundation
import WACrypto
import WAProto

/// A one-time prekey: used by at most one session initiator, then deleted.
public struct PreKeyRecord: Sendable {
    public let id: UInt32
    public let keyPair: Curve25519KeyPair

    public init(id: UInt32, keyPair: Curve25519KeyPair) {
        self.id = id
        self.keyPair = keyPair
    }

    public init(serialized: some DataProtocol) throws {
        let proto: SignalStorage_PreKeyRecordStructure
        do { proto = try SignalStorage_PreKeyRecordStructure(serializedBytes: Data(serialized)) } catch {
            throw SignalError(.corruptRecord, "prekey record does not parse")
        }
        self.id = proto.id
        self.keyPair = try Curve25519KeyPair(signalPrivateKey: proto.privateKey)
    }

    public func serialized() -> Data {
        var proto = SignalStorage_PreKeyRecordStructure()
        proto.id = id
        proto.publicKey = keyPair.publicKey.signalSerialized
        proto.privateKey = keyPair.privateKey.rawRepresentation
        return try! proto.serializedData()
    }
}
