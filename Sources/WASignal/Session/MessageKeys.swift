import Foundation

/// The keys of one message: AES-256-CBC key and IV, and the HMAC key of the
/// 8-byte MAC. `counter` is the message's position in its chain.
struct MessageKeys: Sendable {
    var cipherKey: Data
    var macKey: Data
    var iv: Data
    var counter: UInt32
}
