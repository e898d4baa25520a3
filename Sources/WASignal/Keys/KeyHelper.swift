import Foundation
import WACrypto

/// Generators for the keys a device registers.
public enum KeyHelper {
    /// libsignal's range: 1...16380 (14 bits, zero excluded).
    public static func generateRegistrationID() -> UInt32 {
        var generator = SystemRandomNumberGenerator()
        return UInt32.random(in: 1...16380, using: &generator)
    }

    /// Prekey ids are 24-bit on the wire in WhatsApp (`<id>` is 3 bytes), so
    /// ids wrap below 2^24 and skip zero.
    public static let maxPreKeyID: UInt32 = 0xFF_FFFF

    public static func generatePreKeys(start: UInt32, count: Int) -> [PreKeyRecord] {
        (0..<count).map { offset in
            let id = (start &- 1 &+ UInt32(offset)) % (maxPreKeyID - 1) + 1
            return PreKeyRecord(id: id, keyPair: .generate())
        }
    }

    /// A random 31-bit sender key id (libsignal keeps them positive for Java).
    static func generateSenderKeyID() -> UInt32 {
        var generator = SystemRandomNumberGenerator()
        return UInt32.random(in: 0...UInt32(Int32.max), using: &generator)
    }
}
