import Foundation
import WACrypto

/// X3DH as libsignal v3 does it, for both ends, producing the first session
/// state.
///
/// master = 0xFF×32 ‖ DH(IK_A, SPK_B) ‖ DH(EK_A, IK_B) ‖ DH(EK_A, SPK_B) [‖ DH(EK_A, OPK_B)]
/// (root, chain) = HKDF-SHA256(master, salt 0×32, "WhisperText", 64 bytes)
///
/// The 0xFF prefix is libsignal's "discontinuity bytes" (kept so the same
/// derivation can serve XEdDSA-style key types). The initiator (Alice) then
/// does one DH-ratchet step against the signed prekey so it can send at once;
/// the responder (Bob) sends on the signed prekey until Alice's key arrives.
enum RatchetingSession {
    static func initializeAsAlice(
        ourIdentity: IdentityKeyPair, ourBaseKey: Curve25519KeyPair, theirIdentity: Curve25519PublicKey,
        theirSignedPreKey: Curve25519PublicKey, theirOneTimePreKey: Curve25519PublicKey?,
        ourSendingRatchetKey: Curve25519KeyPair = .generate()
    ) throws -> SessionState {
        var master = Data(repeating: 0xFF, count: 32)
        master.append(try SignalConstants.agree(ourIdentity.privateKey, theirSignedPreKey))
        master.append(try SignalConstants.agree(ourBaseKey.privateKey, theirIdentity))
        master.append(try SignalConstants.agree(ourBaseKey.privateKey, theirSignedPreKey))
        if let theirOneTimePreKey { master.append(try SignalConstants.agree(ourBaseKey.privateKey, theirOneTimePreKey)) }
        let (root, chain) = derive(master)

        var state = SessionState()
        state.version = UInt32(SignalConstants.currentVersion)
        state.structure.localIdentityPublic = ourIdentity.publicKey.signalSerialized
        state.structure.remoteIdentityPublic = theirIdentity.signalSerialized
        let (sendingRoot, sendingChain) = try root.createChain(theirRatchetKey: theirSignedPreKey, ourRatchetKey: ourSendingRatchetKey)
        state.addReceiverChain(theirSignedPreKey, chainKey: chain)
        state.setSenderChain(ratchetKey: ourSendingRatchetKey, chainKey: sendingChain)
        state.rootKey = sendingRoot
        return state
    }

    static func initializeAsBob(
        ourIdentity: IdentityKeyPair, ourSignedPreKey: Curve25519KeyPair, ourOneTimePreKey: Curve25519KeyPair?,
        theirIdentity: Curve25519PublicKey, theirBaseKey: Curve25519PublicKey
    ) throws -> SessionState {
        var master = Data(repeating: 0xFF, count: 32)
        master.append(try SignalConstants.agree(ourSignedPreKey.privateKey, theirIdentity))
        master.append(try SignalConstants.agree(ourIdentity.privateKey, theirBaseKey))
        master.append(try SignalConstants.agree(ourSignedPreKey.privateKey, theirBaseKey))
        if let ourOneTimePreKey { master.append(try SignalConstants.agree(ourOneTimePreKey.privateKey, theirBaseKey)) }
        let (root, chain) = derive(master)

        var state = SessionState()
        state.version = UInt32(SignalConstants.currentVersion)
        state.structure.localIdentityPublic = ourIdentity.publicKey.signalSerialized
        state.structure.remoteIdentityPublic = theirIdentity.signalSerialized
        state.setSenderChain(ratchetKey: ourSignedPreKey, chainKey: chain)
        state.rootKey = root
        return state
    }

    private static func derive(_ master: Data) -> (RootKey, ChainKey) {
        let material = Symmetric.hkdfSHA256(inputKeyMaterial: master, info: SignalConstants.textInfo, outputByteCount: 64)
        return (RootKey(key: material.subdata(in: 0..<32)), ChainKey(key: material.subdata(in: 32..<64), index: 0))
    }
}
