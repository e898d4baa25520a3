import Foundation
import WACrypto
import WAProto

/// A device's long-term identity: a Curve25519 key pair whose public half is
/// what peers pin, and whose private half signs the signed prekey (XEdDSA).
/// Its description never shows the private key.
public struct IdentityKeyPair: Sendable, CustomStringConvertible, CustomReflectable {
    public let keyPair: Curve25519KeyPair
    public var publicKey: Curve25519PublicKey { keyPair.publicKey }
    public var privateKey: Curve25519PrivateKey { keyPair.privateKey }

    public init(keyPair: Curve25519KeyPair) { self.keyPair = keyPair }

    public static func generate() -> IdentityKeyPair { IdentityKeyPair(keyPair: .generate()) }

    /// libsignal's IdentityKeyPairStructure: 33-byte public, 32-byte private.
    public init(serialized: some DataProtocol) throws {
        let proto: SignalStorage_IdentityKeyPairStructure
        do { proto = try SignalStorage_IdentityKeyPairStructure(serializedBytes: Data(serialized)) } catch {
            throw SignalError(.corruptRecord, "identity key pair record does not parse")
        }
        let pair = try Curve25519KeyPair(signalPrivateKey: proto.privateKey)
        guard pair.publicKey.signalSerialized == proto.publicKey else {
            throw SignalError(.corruptRecord, "identity key pair record: public key does not match private key")
        }
        self.keyPair = pair
    }

    public func serialized() -> Data {
        var proto = SignalStorage_IdentityKeyPairStructure()
        proto.publicKey = keyPair.publicKey.signalSerialized
        proto.privateKey = keyPair.privateKey.rawRepresentation
        return try! proto.serializedData()  // only bytes fields: cannot fail
    }

    public var description: String { "IdentityKeyPair(public: \(keyPair.publicKey.signalSerialized.hexString))" }
    public var customMirror: Mirror { Mirror(self, children: []) }
}
