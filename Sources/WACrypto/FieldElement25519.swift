/// An element of GF(2^255 - 19), just enough arithmetic to map a Montgomery
/// u-coordinate to an Edwards y-coordinate: y = (u - 1) / (u + 1).
///
/// Hand-written because neither swift-crypto nor libsodium exposes field
/// arithmetic, and XEdDSA verification must turn a Curve25519 public key into
/// an Ed25519 one. It runs on public data only (keys being verified), so it
/// does not need to be constant time; it favours plain, checkable code: eight
/// 32-bit limbs (little-endian), always kept fully reduced below p.
struct FieldElement25519: Equatable {
    private(set) var limbs: [UInt64]  // 8 limbs, each < 2^32

    private static let p: [UInt64] = [
        0xFFFF_FFED, 0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF,
        0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF, 0x7FFF_FFFF,
    ]

    static let one = FieldElement25519(limbs: [1, 0, 0, 0, 0, 0, 0, 0])

    private init(limbs: [UInt64]) { self.limbs = limbs }

    /// Reads 32 little-endian bytes, ignoring the top bit (as curve25519 does), reduced mod p.
    init(littleEndianBytes bytes: [UInt8]) {
        precondition(bytes.count == 32)
        var masked = bytes
        masked[31] &= 0x7F
        var limbs = [UInt64](repeating: 0, count: 8)
        for i in 0..<8 {
            for j in 0..<4 { limbs[i] |= UInt64(masked[4 * i + j]) << (8 * j) }
        }
        self.limbs = Self.subtractPIfNeeded(limbs)
    }

    var littleEndianBytes: [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        for i in 0..<8 {
            for j in 0..<4 { out[4 * i + j] = UInt8((limbs[i] >> (8 * j)) & 0xFF) }
        }
        return out
    }

    static func + (a: Self, b: Self) -> Self {
        var r = [UInt64](repeating: 0, count: 8)
        var carry: UInt64 = 0
        for i in 0..<8 {
            let v = a.limbs[i] + b.limbs[i] + carry
            r[i] = v & 0xFFFF_FFFF
            carry = v >> 32
        }
        // a + b < 2p < 2^256, so no carry is left over.
        return Self(limbs: subtractPIfNeeded(r))
    }

    static func - (a: Self, b: Self) -> Self {
        // a - b mod p = a + (p - b) (mod p); p - b does not underflow as b < p.
        var negB = [UInt64](repeating: 0, count: 8)
        var borrow: UInt64 = 0
        for i in 0..<8 {
            let v = p[i] &- b.limbs[i] &- borrow
            negB[i] = v & 0xFFFF_FFFF
            borrow = (v >> 63) & 1
        }
        return a + Self(limbs: negB)
    }

    static func * (a: Self, b: Self) -> Self {
        var t = [UInt64](repeating: 0, count: 16)
        for i in 0..<8 {
            var carry: UInt64 = 0
            for j in 0..<8 {
                let v = t[i + j] + a.limbs[i] * b.limbs[j] + carry
                t[i + j] = v & 0xFFFF_FFFF
                carry = v >> 32
            }
            t[i + 8] = carry
        }
        // 2^256 = 2 * 2^255 ≡ 2 * 19 = 38 (mod p): fold the high half down.
        var r = [UInt64](repeating: 0, count: 8)
        var carry: UInt64 = 0
        for i in 0..<8 {
            let v = t[i] + 38 * t[i + 8] + carry
            r[i] = v & 0xFFFF_FFFF
            carry = v >> 32
        }
        while carry != 0 {
            var c = carry * 38
            carry = 0
            for i in 0..<8 {
                let v = r[i] + c
                r[i] = v & 0xFFFF_FFFF
                c = v >> 32
                if c == 0 { break }
            }
            carry = c
        }
        return Self(limbs: subtractPIfNeeded(subtractPIfNeeded(r)))
    }

    /// x^(p-2) = 1/x (Fermat); 0 maps to 0, as in ref10's fe_invert.
    var inverse: Self {
        // p - 2 = 2^255 - 21: bits from the top, square-and-multiply.
        var exponent = Self.p
        exponent[0] -= 2
        var result = Self.one
        for limb in stride(from: 7, through: 0, by: -1) {
            for bit in stride(from: 31, through: 0, by: -1) {
                result = result * result
                if (exponent[limb] >> UInt64(bit)) & 1 == 1 { result = result * self }
            }
        }
        return result
    }

    private static func subtractPIfNeeded(_ x: [UInt64]) -> [UInt64] {
        var geq = true
        for i in stride(from: 7, through: 0, by: -1) where x[i] != p[i] {
            geq = x[i] > p[i]
            break
        }
        guard geq else { return x }
        var r = [UInt64](repeating: 0, count: 8)
        var borrow: UInt64 = 0
        for i in 0..<8 {
            let v = x[i] &- p[i] &- borrow
            r[i] = v & 0xFFFF_FFFF
            borrow = (v >> 63) & 1
        }
        return r
    }
}
