import Foundation
import WACrypto

/// WhatsApp's "LTHash" over app-state value MACs (whatsmeow appstate/lthash): a 128-byte state
/// of 64 little-endian UInt16 lanes; adding an item adds HKDF-SHA256(item, info "WhatsApp Patch
/// Integrity", 128 bytes) lane by lane with wrap-around, removing subtracts it. Written by hand:
/// no maintained library implements this lattice hash (HKDF itself is swift-crypto's).
public enum LTHash {
    public static let size = 128
    static let info = Data("WhatsApp Patch Integrity".utf8)

    /// `base` with every item of `remove` subtracted, then every item of `add` added.
    public static func subtractThenAdd(_ base: Data, remove: [Data], add: [Data]) -> Data {
        var lanes = [UInt8](base.count == size ? base : Data(count: size))
        for item in remove { apply(&lanes, item, subtract: true) }
        for item in add { apply(&lanes, item, subtract: false) }
        return Data(lanes)
    }

    private static func apply(_ lanes: inout [UInt8], _ item: Data, subtract: Bool) {
        let expanded = [UInt8](Symmetric.hkdfSHA256(inputKeyMaterial: item, info: info, outputByteCount: size))
        for i in stride(from: 0, to: size, by: 2) {
            let x = UInt16(lanes[i]) | UInt16(lanes[i + 1]) << 8
            let y = UInt16(expanded[i]) | UInt16(expanded[i + 1]) << 8
            let r = subtract ? x &- y : x &+ y
            lanes[i] = UInt8(r & 0xff)
            lanes[i + 1] = UInt8(r >> 8)
        }
    }
}
