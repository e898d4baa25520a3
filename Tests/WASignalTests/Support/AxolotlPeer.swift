import Foundation
import WACrypto
import WATestSupport
@testable import WASignal

/// One python-axolotl device (Tests/Interop/python/axolotl_peer.py), spoken
/// to in JSON lines. Calls throw when the peer reports an exception, except
/// `attempt`, which returns the exception's class name.
final class AxolotlPeer: @unchecked Sendable {
    // @unchecked: driven by one test at a time, like PythonPeer.
    struct PeerError: Error, CustomStringConvertible {
        let description: String
    }

    private let peer: PythonPeer

    init() throws {
        peer = try PythonPeer(venv: "axolotl", script: "axolotl_peer.py", timeout: 300)
    }

    func finish() throws { try peer.finish() }

    @discardableResult
    func call(_ request: [String: String]) throws -> [String: Any] {
        let answer = try peer.request(request)
        if let error = answer["error"] as? String {
            throw PeerError(description: "peer \(request["op"] ?? "?") failed: \(error): \(answer["detail"] ?? "")")
        }
        return answer
    }

    /// Runs a request expected to fail; returns the exception name, or nil on success.
    func attempt(_ request: [String: String]) throws -> String? {
        try peer.request(request)["error"] as? String
    }

    func string(_ answer: [String: Any], _ key: String) throws -> String {
        guard let value = answer[key] as? String else { throw PeerError(description: "peer answer lacks \(key): \(answer)") }
        return value
    }

    var identity: Curve25519PublicKey {
        get throws { try Curve25519PublicKey(signalSerialized: Data(hex: try string(try call(["op": "identity"]), "identity"))) }
    }

    func bundle(deviceID: UInt32) throws -> PreKeyBundle {
        let a = try call(["op": "bundle", "device": String(deviceID)])
        return PreKeyBundle(
            registrationID: UInt32(try string(a, "regid"))!, deviceID: deviceID,
            preKeyID: UInt32(try string(a, "prekey_id"))!,
            preKey: try Curve25519PublicKey(signalSerialized: Data(hex: try string(a, "prekey"))),
            signedPreKeyID: UInt32(try string(a, "spk_id"))!,
            signedPreKey: try Curve25519PublicKey(signalSerialized: Data(hex: try string(a, "spk"))),
            signedPreKeySignature: Data(hex: try string(a, "spk_sig")),
            identityKey: try Curve25519PublicKey(signalSerialized: Data(hex: try string(a, "identity"))))
    }

    func build(with bundle: PreKeyBundle, for address: SignalAddress) throws {
        var request = [
            "op": "build", "name": address.name, "device": String(address.deviceID),
            "regid": String(bundle.registrationID), "spk_id": String(bundle.signedPreKeyID),
            "spk": bundle.signedPreKey.signalSerialized.hex, "spk_sig": bundle.signedPreKeySignature.hex,
            "identity": bundle.identityKey.signalSerialized.hex,
        ]
        if let id = bundle.preKeyID, let key = bundle.preKey {
            request["prekey_id"] = String(id)
            request["prekey"] = key.signalSerialized.hex
        }
        try call(request)
    }

    func encrypt(_ plaintext: Data, to address: SignalAddress) throws -> CiphertextMessage {
        let a = try call(["op": "encrypt", "name": address.name, "device": String(address.deviceID), "plaintext": plaintext.hex])
        let bytes = Data(hex: try string(a, "ciphertext"))
        return try string(a, "type") == "pkmsg" ? .preKey(bytes) : .whisper(bytes)
    }

    func decryptRequest(_ message: CiphertextMessage, from address: SignalAddress) -> [String: String] {
        ["op": "decrypt", "name": address.name, "device": String(address.deviceID), "type": message.type,
         "ciphertext": message.serialized.hex]
    }

    func decrypt(_ message: CiphertextMessage, from address: SignalAddress) throws -> Data {
        Data(hex: try string(try call(decryptRequest(message, from: address)), "plaintext"))
    }

    // MARK: Groups

    private func groupRequest(_ op: String, _ name: SenderKeyName) -> [String: String] {
        ["op": op, "group": name.groupID, "name": name.sender.name, "device": String(name.sender.deviceID)]
    }

    func groupCreate(_ name: SenderKeyName) throws -> Data {
        Data(hex: try string(try call(groupRequest("group_create", name)), "skdm"))
    }

    func groupProcess(_ skdm: Data, from name: SenderKeyName) throws {
        var request = groupRequest("group_process", name)
        request["skdm"] = skdm.hex
        try call(request)
    }

    func groupEncrypt(_ plaintext: Data, as name: SenderKeyName) throws -> Data {
        var request = groupRequest("group_encrypt", name)
        request["plaintext"] = plaintext.hex
        return Data(hex: try string(try call(request), "ciphertext"))
    }

    func groupDecryptRequest(_ ciphertext: Data, from name: SenderKeyName) -> [String: String] {
        var request = groupRequest("group_decrypt", name)
        request["ciphertext"] = ciphertext.hex
        return request
    }

    func groupDecrypt(_ ciphertext: Data, from name: SenderKeyName) throws -> Data {
        Data(hex: try string(try call(groupDecryptRequest(ciphertext, from: name)), "plaintext"))
    }
}
