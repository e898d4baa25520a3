import Foundation
import WABinary
import WACrypto

/// A simulated primary phone: the account, its identity (account) key, its LID, its linked devices.
public struct SimPhone: Sendable {
    public let number: String
    public let lidUser: String
    public let pushName: String
    /// The account identity key: signs linked devices' ADV identities.
    public let accountKey: Curve25519KeyPair
    public let platform: String
    /// The account was moved to LID addressing (every account is, by now): the server refuses
    /// DMs addressed to its phone number and the phone sends LID-addressed.
    public internal(set) var lidMigrated = true
    var nextDeviceID: UInt16 = 1
    var nextKeyIndex: UInt32 = 1

    public var jid: JID { JID(user: number, server: JID.userServer) }
    public var lid: JID { JID(user: lidUser, server: JID.lidServer) }
}

/// A linked (companion) device the simulator knows.
public struct SimDevice: Sendable {
    public let jid: JID
    public let lid: JID
    public let noiseKey: Curve25519PublicKey
    public let identityKey: Curve25519PublicKey
    public let registrationID: UInt32
    public let keyIndex: UInt32
    /// The signed prekey: id (24-bit), public key, signature (from registration, replaced by uploads).
    public var signedPreKey: (id: UInt32, key: Data, signature: Data)
    /// One-time prekeys the device uploaded and no one fetched yet, by id (bounded by `maxPreKeys`).
    public var preKeys: [UInt32: Data] = [:]
    public static let maxPreKeys = 5000
    public var uploadedPreKeys: Int { preKeys.count }
}

/// A fault the simulator can inject.
public enum SimFault: Sendable, Hashable {
    /// Close the device's live connection without a word.
    case dropConnection
    /// Send `<stream:error code=…/>` and close (515 restart, 503, …).
    case streamError(code: Int)
    /// Answer the device's next login with `<failure reason=… [code] [expire]/>`.
    case failNextLogin(reason: Int, code: Int? = nil, expire: Int? = nil)
    /// Send `<failure reason=…>` on the live connection now and close it.
    case failNow(reason: Int, code: Int? = nil, expire: Int? = nil)
    /// Stop (true) or resume (false) answering `w:p` pings on the live connection.
    case ignorePings(Bool)
    /// Delay every answer to this device by this long (nil to clear).
    case slowAnswers(Duration?)
    /// Missing answers: hold back (true) the `<ack>` for each message the device sends
    /// (the message is still routed); false sends the held acks, late, and answers again.
    case withholdAcks(Bool)
    /// Write these bytes raw into the live connection's stream (a hostile or broken server):
    /// e.g. garbage that fails Noise decryption, or `FF FF FF` announcing a 16 MiB frame.
    case rawBytes(Data)
}

/// The simulator's typed errors (`sim.*`).
public struct SimError: Error, Sendable, Equatable, CustomStringConvertible {
    public let code: String
    public let message: String
    init(_ code: String, _ message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { "\(code): \(message)" }

    static func unknownPhone(_ n: String) -> SimError { SimError("sim.unknown_phone", "no phone \(n)") }
    static func unknownRef() -> SimError { SimError("sim.unknown_ref", "QR ref is not live on any connection") }
    static func badQR(_ why: String) -> SimError { SimError("sim.bad_qr", why) }
    static func pairingFailed(_ why: String) -> SimError { SimError("sim.pairing_failed", why) }
    static func noPendingCode(_ n: String) -> SimError { SimError("sim.no_pending_code", "no pairing code requested for \(n)") }
    static func timeout(_ what: String) -> SimError { SimError("sim.timeout", "\(what) did not come in time") }
}
