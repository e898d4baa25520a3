import Foundation
import WACrypto
import WAProto

/// A double-ratchet message (`<enc type="msg">`): version byte ‖ protobuf ‖
/// 8-byte MAC. The MAC is HMAC-SHA256 under the message's MAC key over
/// sender identity (33) ‖ receiver identity (33) ‖ version byte ‖ protobuf,
/// cut to 8 bytes; it binds the message to both identities.
struct SignalMessage: Sendable {
    var version: UInt8
    var ratchetKey: Curve25519PublicKey
    var counter: UInt32
    var previousCounter: UInt32
    var ciphertext: Data
    /// The whole framed message as received or built.
    var serialized: Data

    init(
        ratchetKey: Curve25519PublicKey, counter: UInt32, previousCounter: UInt32, ciphertext: Data, macKey: Data,
        senderIdentity: Curve25519PublicKey, receiverIdentity: Curve25519PublicKey
    ) {
        var proto = SignalWire_SignalMessage()
        proto.ratchetKey = ratchetKey.signalSerialized
        proto.counter = counter
        proto.previousCounter = previousCounter
        proto.ciphertext = ciphertext
        var body = Data([SignalConstants.versionByte])
        body.append(try! proto.serializedData())
        body.append(Self.mac(body, macKey: macKey, sender: senderIdentity, receiver: receiverIdentity))
        self.version = SignalConstants.currentVersion
        self.ratchetKey = ratchetKey
        self.counter = counter
        self.previousCounter = previousCounter
        self.ciphertext = ciphertext
        self.serialized = body
    }

    init(serialized bytes: Data) throws {
        let bytes = Data(bytes)
        guard bytes.count > 1 + SignalConstants.macLength else {
            throw SignalError(.invalidMessage, "signal message too short (\(bytes.count) bytes)")
        }
        try SignalMessage.checkVersion(bytes[bytes.startIndex])
        let body = bytes.subdata(in: 1..<(bytes.count - SignalConstants.macLength))
        let proto: SignalWire_SignalMessage
        do { proto = try SignalWire_SignalMessage(serializedBytes: body) } catch {
            throw SignalError(.invalidMessage, "signal message protobuf does not parse")
        }
        guard proto.hasRatchetKey, proto.hasCounter, proto.hasCiphertext else {
            throw SignalError(.invalidMessage, "signal message lacks ratchet key, counter or ciphertext")
        }
        self.version = bytes[bytes.startIndex] >> 4
        self.ratchetKey = try Curve25519PublicKey(signalKey: proto.ratchetKey)
        self.counter = proto.counter
        self.previousCounter = proto.previousCounter
        self.ciphertext = proto.ciphertext
        self.serialized = bytes
    }

    /// Checks the MAC in constant time; `signal.invalid_mac` when it differs.
    func verifyMAC(macKey: Data, sender: Curve25519PublicKey, receiver: Curve25519PublicKey) throws {
        let body = serialized.prefix(serialized.count - SignalConstants.macLength)
        let expected = Self.mac(Data(body), macKey: macKey, sender: sender, receiver: receiver)
        guard Symmetric.constantTimeEqual(expected, serialized.suffix(SignalConstants.macLength)) else {
            throw SignalError(.invalidMAC, "message MAC does not verify")
        }
    }

    static func mac(_ body: Data, macKey: Data, sender: Curve25519PublicKey, receiver: Curve25519PublicKey) -> Data {
        var input = sender.signalSerialized
        input.append(receiver.signalSerialized)
        input.append(body)
        return Symmetric.hmacSHA256(key: macKey, input).prefix(SignalConstants.macLength)
    }

    /// v3 only: a lower version is a legacy message, a higher one is unknown.
    static func checkVersion(_ byte: UInt8) throws {
        let version = byte >> 4
        guard version == SignalConstants.currentVersion else {
            throw SignalError(.invalidVersion, "message version \(version) is not 3")
        }
    }
}
