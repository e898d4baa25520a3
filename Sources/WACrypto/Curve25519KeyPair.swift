import Crypto
import Foundation

/// A Curve25519 (X25519) public key: the raw 32-byte Montgomery u-coordinate.
///
/// WhatsApp sends raw 32-byte keys on the XMPP wire and in the Noise
/// handshake; Signal protobufs carry the 33-byte form with a 0x05 type byte
/// (`signalSerialized`).
public struct Curve25519PublicKey: Sendable, Hashable {
    /// The Signal key type byte for Curve25519 (libsignal's `DJB_TYPE`).
    public static let signalKeyType: UInt8 = 0x05

    public let rawRepresentation: Data

    public init(rawRepresentation: some DataProtocol) throws {
        guard rawRepresentation.count == 32 else {
            throw WACryptoError(.invalidKey, "Curve25519 public key must be 32 bytes, got \(rawRepresentation.count)")
        }
        self.rawRepresentation = Data(rawRepresentation)
    }

    /// Accepts the 33-byte Signal form (0x05 ‖ key).
    public init(signalSerialized bytes: some DataProtocol) throws {
        let bytes = Data(bytes)
        guard bytes.count == 33, bytes.first == Self.signalKeyType else {
            throw WACryptoError(.invalidKey, "Signal public key must be 0x05 followed by 32 bytes")
        }
        // Data(...) re-bases the slice so indices start at 0 like every other Data here.
        self.rawRepresentation = Data(bytes.dropFirst())
    }

    /// The 33-byte Signal form: 0x05 ‖ raw key.
    public var signalSerialized: Data { Data([Self.signalKeyType]) + rawRepresentation }
}

/// A Curve25519 private key, stored clamped (as libsignal and whatsmeow store
/// theirs), so the same bytes work for X25519 and for XEdDSA signing.
///
/// Its description and mirror never show the key bytes.
public struct Curve25519PrivateKey: Sendable, CustomStringConvertible, CustomReflectable {
    public let rawRepresentation: Data

    /// Takes 32 bytes and clamps them (clears bits 0-2 and 255, sets 254).
    public init(rawRepresentation: some DataProtocol) throws {
        guard rawRepresentation.count == 32 else {
            throw WACryptoError(.invalidKey, "Curve25519 private key must be 32 bytes, got \(rawRepresentation.count)")
        }
        var bytes = [UInt8](rawRepresentation)
        bytes[0] &= 248
        bytes[31] &= 127
        bytes[31] |= 64
        self.rawRepresentation = Data(bytes)
    }

    /// A new random key from the system's secure generator.
    public static func generate() -> Curve25519PrivateKey {
        let random = Curve25519.KeyAgreement.PrivateKey().rawRepresentation
        // 32 bytes by construction, so this cannot throw.
        return try! Curve25519PrivateKey(rawRepresentation: random)
    }

    public var publicKey: Curve25519PublicKey {
        let key = try! Curve25519.KeyAgreement.PrivateKey(rawRepresentation: rawRepresentation)
        return try! Curve25519PublicKey(rawRepresentation: key.publicKey.rawRepresentation)
    }

    /// X25519(self, peer). Throws `crypto.weak_shared_secret` for a low-order peer key.
    public func sharedSecret(with peer: Curve25519PublicKey) throws -> Data {
        do {
            let key = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: rawRepresentation)
            let peerKey = try Curve25519.KeyAgreement.PublicKey(rawRepresentation: peer.rawRepresentation)
            let secret = try key.sharedSecretFromKeyAgreement(with: peerKey)
            let bytes = secret.withUnsafeBytes { Data($0) }
            guard bytes.contains(where: { $0 != 0 }) else {
                throw WACryptoError(.weakSharedSecret, "X25519 result is all zero")
            }
            return bytes
        } catch let error as WACryptoError {
            throw error
        } catch {
            throw WACryptoError(.weakSharedSecret, "X25519 failed: \(error)")
        }
    }

    public var description: String { "Curve25519PrivateKey(redacted)" }
    public var customMirror: Mirror { Mirror(self, children: []) }
}

/// A Curve25519 key pair (identity, signed prekey, Noise static or ephemeral).
public struct Curve25519KeyPair: Sendable {
    public let privateKey: Curve25519PrivateKey
    public let publicKey: Curve25519PublicKey

    public init(privateKey: Curve25519PrivateKey) {
        self.privateKey = privateKey
        self.publicKey = privateKey.publicKey
    }

    public static func generate() -> Curve25519KeyPair {
        Curve25519KeyPair(privateKey: .generate())
    }
}
