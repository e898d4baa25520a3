/// Nibble and hex packing: two characters per byte, for short strings made
/// only of digits (plus `-` and `.`) or of uppercase hex digits. The length
/// byte holds the number of packed bytes, with bit 7 set when the last byte
/// carries one character and a pad nibble (0xF).
enum PackedString {
    /// Longest string the one-byte length can describe (127 bytes → 254 chars),
    /// capped as WhatsApp's clients cap it.
    static let maxLength = 127

    static func isNibble(_ utf8: String.UTF8View) -> Bool {
        utf8.count <= maxLength && utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D || $0 == 0x2E }
    }

    static func isHex(_ utf8: String.UTF8View) -> Bool {
        utf8.count <= maxLength && utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x46) }
    }

    /// Nibble alphabet: 0–9 are digits, 10 is `-`, 11 is `.`; 15 pads.
    static func nibbleValue(_ c: UInt8) -> UInt8 {
        switch c {
        case 0x2D: return 10
        case 0x2E: return 11
        default: return c &- 0x30
        }
    }

    static func hexValue(_ c: UInt8) -> UInt8 {
        c >= 0x41 ? c &- 0x41 &+ 10 : c &- 0x30
    }

    /// The character for nibble `v`, or nil if `v` is not in the alphabet.
    static func nibbleChar(_ v: UInt8) -> UInt8? {
        switch v {
        case 0...9: return 0x30 + v
        case 10: return 0x2D
        case 11: return 0x2E
        default: return nil
        }
    }

    static func hexChar(_ v: UInt8) -> UInt8 {
        v < 10 ? 0x30 + v : 0x41 + v - 10
    }
}
