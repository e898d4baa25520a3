import Foundation
import WACrypto

/// The hash chain of a sender key: iteration n gives message key n and the
/// chain key for n+1 (HMAC with 0x01 and 0x02, as the 1:1 chains).
struct SenderChainKey: Sendable {
    var iteration: UInt32
    var seed: Data

    var next: SenderChainKey {
        SenderChainKey(iteration: iteration + 1, seed: Symmetric.hmacSHA256(key: seed, ChainKey.chainKeySeedByte))
    }

    var messageKey: SenderMessageKey {
        SenderMessageKey(iteration: iteration, seed: Symmetric.hmacSHA256(key: seed, ChainKey.messageKeySeedByte))
    }
}
