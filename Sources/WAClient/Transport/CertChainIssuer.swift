import Foundation
import WACrypto
import WAProto

/// Issues Noise certificate chains under a root key we hold: what our
/// simulator presents, and what tests verify with an injected trust root.
public struct CertChainIssuer: Sendable {
    public let root: Curve25519KeyPair
    public let intermediate: Curve25519KeyPair
    public let intermediateSerial: UInt32

    public init(root: Curve25519KeyPair = .generate(), intermediate: Curve25519KeyPair = .generate(), intermediateSerial: UInt32 = 3) {
        self.root = root
        self.intermediate = intermediate
        self.intermediateSerial = intermediateSerial
    }

    /// The verifier that trusts this issuer's root.
    public var verifier: CertChainVerifier { CertChainVerifier(trustRoot: root.publicKey) }

    /// A serialized `CertChain` whose leaf certifies `serverStatic`.
    public func chain(
        for serverStatic: Curve25519PublicKey, leafSerial: UInt32 = 355,
        notBefore: Date = Date(timeIntervalSinceNow: -3600), notAfter: Date = Date(timeIntervalSinceNow: 86400)
    ) throws -> Data {
        var intermediateDetails = WACert_CertChain.NoiseCertificate.Details()
        intermediateDetails.serial = intermediateSerial
        intermediateDetails.issuerSerial = CertChainVerifier.rootIssuerSerial
        intermediateDetails.key = intermediate.publicKey.rawRepresentation
        intermediateDetails.notBefore = UInt64(max(0, notBefore.timeIntervalSince1970))
        intermediateDetails.notAfter = UInt64(max(0, notAfter.timeIntervalSince1970))

        var leafDetails = WACert_CertChain.NoiseCertificate.Details()
        leafDetails.serial = leafSerial
        leafDetails.issuerSerial = intermediateSerial
        leafDetails.key = serverStatic.rawRepresentation
        leafDetails.notBefore = intermediateDetails.notBefore
        leafDetails.notAfter = intermediateDetails.notAfter

        var chain = WACert_CertChain()
        chain.intermediate = try certificate(intermediateDetails, signedBy: root.privateKey)
        chain.leaf = try certificate(leafDetails, signedBy: intermediate.privateKey)
        return try chain.serializedBytes()
    }

    private func certificate(
        _ details: WACert_CertChain.NoiseCertificate.Details, signedBy key: Curve25519PrivateKey
    ) throws -> WACert_CertChain.NoiseCertificate {
        var certificate = WACert_CertChain.NoiseCertificate()
        certificate.details = try details.serializedBytes()
        certificate.signature = try XEdDSA.sign(certificate.details, privateKey: key)
        return certificate
    }
}
