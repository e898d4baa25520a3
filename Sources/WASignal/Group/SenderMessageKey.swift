import Foundation
import WACrypto

/// One group message's key: HKDF(seed, "WhisperGroup", 48) = IV (16) ‖ AES-256 key (32).
struct SenderMessageKey: Sendable {
    var iteration: UInt32
    var seed: Data

    var ivAndKey: (iv: Data, key: Data) {
        let material = Symmetric.hkdfSHA256(inputKeyMaterial: seed, info: SignalConstants.groupInfo, outputByteCount: 48)
        return (material.subdata(in: 0..<16), material.subdata(in: 16..<48))
    }
}
