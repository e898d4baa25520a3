import Foundation
import WACrypto
import WAProto

/// Checks the certificate chain a server sends in its Noise ServerHello.
///
/// The chain is two certificates: an intermediate signed (XEdDSA) by the
/// trust root with issuerSerial 0, and a leaf signed by the intermediate
/// whose issuerSerial is the intermediate's serial. The leaf's key must be
/// the static key the server just proved it holds in the handshake, and the
/// time of checking must lie inside both certificates' notBefore…notAfter.
///
/// Production uses WhatsApp's root; tests and our simulator inject their own.
public struct CertChainVerifier: Sendable {
    /// WhatsApp's Noise root public key (Curve25519, raw 32 bytes).
    public static let whatsAppRootKey = try! Curve25519PublicKey(rawRepresentation: Data([
        0x14, 0x23, 0x75, 0x57, 0x4d, 0x0a, 0x58, 0x71, 0x66, 0xaa, 0xe7, 0x1e, 0xbe, 0x51, 0x64, 0x37,
        0xc4, 0xa2, 0x8b, 0x73, 0xe3, 0x69, 0x5c, 0x6c, 0xe1, 0xf7, 0xf9, 0x54, 0x5d, 0xa8, 0xee, 0x6b,
    ]))
    /// The issuerSerial an intermediate signed by the root carries.
    public static let rootIssuerSerial: UInt32 = 0

    public static let whatsApp = CertChainVerifier(trustRoot: whatsAppRootKey)

    public let trustRoot: Curve25519PublicKey

    public init(trustRoot: Curve25519PublicKey) {
        self.trustRoot = trustRoot
    }

    /// What a verified chain says, for logging.
    public struct Verified: Sendable, Equatable {
        public let intermediateSerial: UInt32
        public let leafSerial: UInt32
        public let notAfter: Date
    }

    /// Verifies the serialized `CertChain` for `serverStatic` at `now`.
    @discardableResult
    public func verify(_ serializedChain: Data, serverStatic: Curve25519PublicKey, now: Date) throws -> Verified {
        let chain: WACert_CertChain
        do {
            chain = try WACert_CertChain(serializedBytes: serializedChain)
        } catch {
            throw WAClientError(.certMalformed, "server payload is not a CertChain")
        }
        guard chain.hasIntermediate, chain.hasLeaf else {
            throw WAClientError(.certMalformed, "certificate chain lacks its leaf or intermediate")
        }
        let intermediate = try details(of: chain.intermediate, name: "intermediate")
        let leaf = try details(of: chain.leaf, name: "leaf")

        try checkSignature(chain.intermediate, signer: trustRoot, name: "intermediate")
        guard intermediate.issuerSerial == Self.rootIssuerSerial else {
            throw WAClientError(.certIssuerMismatch, "intermediate issuerSerial \(intermediate.issuerSerial) is not the root's")
        }
        let intermediateKey: Curve25519PublicKey
        do {
            intermediateKey = try Curve25519PublicKey(rawRepresentation: intermediate.key)
        } catch {
            throw WAClientError(.certMalformed, "intermediate key is not 32 bytes")
        }
        try checkSignature(chain.leaf, signer: intermediateKey, name: "leaf")
        guard leaf.issuerSerial == intermediate.serial else {
            throw WAClientError(.certIssuerMismatch, "leaf issuerSerial \(leaf.issuerSerial) ≠ intermediate serial \(intermediate.serial)")
        }
        guard Symmetric.constantTimeEqual(leaf.key, serverStatic.rawRepresentation) else {
            throw WAClientError(.certKeyMismatch, "leaf key is not the server's static key")
        }
        let seconds = now.timeIntervalSince1970
        // A missing notAfter reads as 0 and so counts as expired: no open-ended certificates.
        for (name, d) in [("intermediate", intermediate), ("leaf", leaf)] {
            if seconds < Double(d.notBefore) {
                throw WAClientError(.certExpired, "\(name) certificate not valid before \(d.notBefore)")
            }
            if seconds > Double(d.notAfter) {
                throw WAClientError(.certExpired, "\(name) certificate expired at \(d.notAfter)")
            }
        }
        return Verified(
            intermediateSerial: intermediate.serial, leafSerial: leaf.serial,
            notAfter: Date(timeIntervalSince1970: Double(leaf.notAfter)))
    }

    private func details(
        of certificate: WACert_CertChain.NoiseCertificate, name: String
    ) throws -> WACert_CertChain.NoiseCertificate.Details {
        guard certificate.hasDetails, certificate.hasSignature,
            let details = try? WACert_CertChain.NoiseCertificate.Details(serializedBytes: certificate.details)
        else {
            throw WAClientError(.certMalformed, "\(name) certificate has no readable details or signature")
        }
        return details
    }

    private func checkSignature(
        _ certificate: WACert_CertChain.NoiseCertificate, signer: Curve25519PublicKey, name: String
    ) throws {
        guard XEdDSA.verify(certificate.signature, for: certificate.details, publicKey: signer) else {
            throw WAClientError(.certBadSignature, "\(name) certificate signature does not verify", underlying: .badSignature)
        }
    }
}
