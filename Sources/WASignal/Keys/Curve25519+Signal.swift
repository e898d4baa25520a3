import Foundation
import WACrypto

// Parsing helpers that turn WACrypto errors into WASignal ones.
extension Curve25519KeyPair {
    /// A key pair from stored private bytes; a record error, not a crypto one.
    init(signalPrivateKey bytes: Data) throws {
        do { self.init(privateKey: try Curve25519PrivateKey(rawRepresentation: bytes)) } catch {
            throw SignalError(.corruptRecord, "stored private key is not 32 bytes")
        }
    }
}

extension Curve25519PublicKey {
    /// Parses the 33-byte Signal form, throwing `signal.invalid_key`.
    init(signalKey bytes: some DataProtocol) throws {
        do { try self.init(signalSerialized: bytes) } catch {
            throw SignalError(.invalidKey, "public key is not 0x05 followed by 32 bytes")
        }
    }
}

extension Data {
    var hexString: String { map { String(format: "%02x", $0) }.joined() }
}
