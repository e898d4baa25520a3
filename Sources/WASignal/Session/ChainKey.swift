import Foundation
import WACrypto

/// A symmetric chain (sending or receiving): each step gives one message's
/// keys and the next chain key, so old keys cannot be recomputed from new ones.
struct ChainKey: Sendable {
    var key: Data
    var index: UInt32

    static let messageKeySeedByte = Data([0x01])
    static let chainKeySeedByte = Data([0x02])

    var next: ChainKey { ChainKey(key: Symmetric.hmacSHA256(key: key, Self.chainKeySeedByte), index: index + 1) }

    var messageKeys: MessageKeys {
        let seed = Symmetric.hmacSHA256(key: key, Self.messageKeySeedByte)
        let material = Symmetric.hkdfSHA256(
            inputKeyMaterial: seed, info: SignalConstants.messageKeysInfo, outputByteCount: 80)
        return MessageKeys(
            cipherKey: material.subdata(in: 0..<32), macKey: material.subdata(in: 32..<64),
            iv: material.subdata(in: 64..<80), counter: index)
    }
}
