import Crypto
import Foundation
import NIOSSL
import X509

/// The TLS identity of the simulator's `wss://` listener: a self-signed
/// certificate for `localhost`, minted per run or loaded.
/// A client trusts it by adding `certificatePEM` to its TLS roots.
public struct SimTLS: Sendable {
    public let certificatePEM: String
    public let privateKeyPEM: String

    public init(certificatePEM: String, privateKeyPEM: String) {
        self.certificatePEM = certificatePEM
        self.privateKeyPEM = privateKeyPEM
    }

    /// A new self-signed P-256 certificate, valid for a year, for localhost
    /// (and `extraNames`, e.g. `web.whatsapp.com` for a real client pointed here).
    public static func mint(extraNames: [String] = []) throws -> SimTLS {
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName {
            CommonName("localhost")
            OrganizationName("wabridge-sim")
        }
        let now = Date()
        var names: [GeneralName] = [.dnsName("localhost")]
        names += extraNames.map { .dnsName($0) }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(),
            publicKey: Certificate.PublicKey(key.publicKey),
            notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(365 * 86400),
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                KeyUsage(digitalSignature: true, keyCertSign: true)
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames(names)
            },
            issuerPrivateKey: Certificate.PrivateKey(key))
        return SimTLS(certificatePEM: try certificate.serializeAsPEM().pemString, privateKeyPEM: key.pemRepresentation)
    }

    /// The certificate as a trust root for clients.
    public func trustRoots() throws -> [NIOSSLCertificate] {
        [try NIOSSLCertificate(bytes: Array(certificatePEM.utf8), format: .pem)]
    }

    func serverContext() throws -> NIOSSLContext {
        let certificate = try NIOSSLCertificate(bytes: Array(certificatePEM.utf8), format: .pem)
        let key = try NIOSSLPrivateKey(bytes: Array(privateKeyPEM.utf8), format: .pem)
        return try NIOSSLContext(configuration: .makeServerConfiguration(
            certificateChain: [.certificate(certificate)], privateKey: .privateKey(key)))
    }
}
