import Foundation
import WABinary
import WACrypto
import WAProto

/// QR and pairing-code login, as pure functions over the device record.
public enum Pairing {
    /// ADV signature prefixes: account signature, device signature (E2EE accounts).
    public static let accountSignaturePrefix = Data([6, 0])
    public static let deviceSignaturePrefix = Data([6, 1])
    public static let hostedAccountSignaturePrefix = Data([6, 5])
    public static let qrLinkPrefix = "https://wa.me/settings/linked_devices#"

    /// `ref,noisePub,identityPub,advSecret` (standard base64), optionally with a platform id and the wa.me wrapper.
    public static func qrString(ref: String, device: DeviceRecord, linkFormat: Bool = true, platformID: Int = 1) -> String {
        let body = [
            ref,
            device.noiseKey.publicKey.rawRepresentation.base64EncodedString(),
            device.identityKey.publicKey.rawRepresentation.base64EncodedString(),
            device.advSecret.base64EncodedString(),
        ].joined(separator: ",")
        return linkFormat ? qrLinkPrefix + body + ",\(platformID)" : body
    }

    /// The parts of a QR string, in either form.
    public struct QRContents: Sendable, Equatable {
        public let ref: String
        public let noiseKey: Curve25519PublicKey
        public let identityKey: Curve25519PublicKey
        public let advSecret: Data
        public let platformID: Int?
    }

    public static func parseQR(_ text: String) throws -> QRContents {
        var body = Substring(text)
        if body.hasPrefix(qrLinkPrefix) { body = body.dropFirst(qrLinkPrefix.count) }
        let parts = body.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 4 || parts.count == 5,
              let noise = Data(base64Encoded: parts[1]), let identity = Data(base64Encoded: parts[2]),
              let adv = Data(base64Encoded: parts[3]), adv.count == 32, !parts[0].isEmpty
        else { throw WAClientError(.pairingFailed, "not a WhatsApp QR string") }
        return QRContents(
            ref: parts[0], noiseKey: try Curve25519PublicKey(rawRepresentation: noise),
            identityKey: try Curve25519PublicKey(rawRepresentation: identity), advSecret: adv,
            platformID: parts.count == 5 ? Int(parts[4]) : nil)
    }

    /// The outcome of checking a `pair-success`.
    public struct PairResult: Sendable {
        /// The record to store: account set (account key kept), JID, LID, platform.
        public let device: DeviceRecord
        /// The `<pair-device-sign>` answer's `device-identity` bytes (account key left out).
        public let signedIdentity: Data
        public let keyIndex: UInt32
    }

    /// Pair-error answers a real client gives.
    public struct PairError: Error, Sendable, Equatable {
        public let code: Int
        public let text: String
        public init(code: Int, text: String) {
            self.code = code
            self.text = text
        }
    }

    /// Checks the phone's ADV identity (HMAC with our adv secret, account
    /// signature) and countersigns it with our identity key.
    public static func handlePairSuccess(
        deviceIdentity: Data, device: DeviceRecord, jid: JID, lid: JID?, platform: String, businessName: String
    ) throws(PairError) -> PairResult {
        guard let container = try? WAAdv_ADVSignedDeviceIdentityHMAC(serializedBytes: deviceIdentity) else {
            throw PairError(code: 500, text: "internal-error")
        }
        let hosted = container.accountType == .hosted
        let mac = Symmetric.hmacSHA256(key: device.advSecret, (hosted ? hostedAccountSignaturePrefix : Data()) + container.details)
        guard Symmetric.constantTimeEqual(mac, container.hmac) else {
            throw PairError(code: 401, text: "hmac-mismatch")
        }
        guard var signed = try? WAAdv_ADVSignedDeviceIdentity(serializedBytes: container.details),
              signed.accountSignatureKey.count == 32, signed.accountSignature.count == 64,
              let accountKey = try? Curve25519PublicKey(rawRepresentation: signed.accountSignatureKey)
        else { throw PairError(code: 401, text: "signature-mismatch") }
        let ownIdentity = device.identityKey.publicKey.rawRepresentation
        let accountMessage = (hosted ? hostedAccountSignaturePrefix : accountSignaturePrefix) + signed.details + ownIdentity
        guard XEdDSA.verify(signed.accountSignature, for: accountMessage, publicKey: accountKey) else {
            throw PairError(code: 401, text: "signature-mismatch")
        }
        guard let identity = try? WAAdv_ADVDeviceIdentity(serializedBytes: signed.details) else {
            throw PairError(code: 500, text: "internal-error")
        }
        let deviceMessage = deviceSignaturePrefix + signed.details + ownIdentity + signed.accountSignatureKey
        guard let deviceSignature = try? XEdDSA.sign(deviceMessage, privateKey: device.identityKey.privateKey) else {
            throw PairError(code: 500, text: "internal-error")
        }
        signed.deviceSignature = deviceSignature
        var updated = device
        updated.account = signed
        updated.jid = jid
        updated.lid = lid
        updated.platform = platform
        updated.businessName = businessName
        var sent = signed
        sent.clearAccountSignatureKey()
        guard let sentBytes = try? sent.serializedBytes() as Data else {
            throw PairError(code: 500, text: "internal-error")
        }
        return PairResult(device: updated, signedIdentity: sentBytes, keyIndex: identity.keyIndex)
    }

    /// The phone number for pairing-code login: digits only, international (no leading 0), 7–15 digits.
    public static func normalizePhoneNumber(_ text: String) throws -> String {
        let allowed = Set("+0123456789 -().")
        guard !text.isEmpty, text.allSatisfy({ allowed.contains($0) }) else {
            throw WAClientError(.invalidPhoneNumber, "phone number may hold only digits, +, spaces, dashes and brackets")
        }
        let digits = text.filter(\.isNumber)
        guard digits.count >= 7 else {
            throw WAClientError(.invalidPhoneNumber, "phone number is too short")
        }
        guard digits.count <= 15 else {
            throw WAClientError(.invalidPhoneNumber, "phone number is longer than E.164 allows")
        }
        guard !digits.hasPrefix("0") else {
            throw WAClientError(.invalidPhoneNumber, "phone number must be international (country code first, no leading 0)")
        }
        return digits
    }

    /// The companion side of a pairing-code login in progress.
    public struct CodeSession: Sendable {
        public let phone: String
        public let code: PairingCode
        public let ephemeral: Curve25519KeyPair
        public var ref: Data?

        public init(phone: String, code: PairingCode = .random(), ephemeral: Curve25519KeyPair = .generate()) {
            self.phone = phone
            self.code = code
            self.ephemeral = ephemeral
        }

        /// The `companion_hello` IQ content.
        public func helloNode(device: DeviceRecord, platformID: Int = 1, platformName: String) throws -> Node {
            let wrapped = try code.wrap(ephemeral.publicKey)
            return Node("link_code_companion_reg", [
                Attribute("jid", .jid(JID(user: phone, server: JID.userServer))),
                Attribute("stage", "companion_hello"),
                Attribute("should_show_push_notification", "true"),
            ], content: .nodes([
                Node("link_code_pairing_wrapped_companion_ephemeral_pub", content: .bytes([UInt8](wrapped))),
                Node("companion_server_auth_key_pub", content: .bytes([UInt8](device.noiseKey.publicKey.rawRepresentation))),
                Node("companion_platform_id", content: .bytes(Array(String(platformID).utf8))),
                Node("companion_platform_display", content: .bytes(Array(platformName.utf8))),
                Node("link_code_pairing_nonce", content: .bytes([0])),
            ]))
        }

        /// From the phone's `primary_hello`: the `companion_finish` content and the new adv secret.
        public func finish(
            wrappedPrimaryEphemeral: Data, primaryIdentity: Data, device: DeviceRecord
        ) throws -> (node: Node, advSecret: Data) {
            let primaryEphemeral = try code.unwrap(wrappedPrimaryEphemeral)
            let primaryIdentityKey = try Curve25519PublicKey(rawRepresentation: primaryIdentity)
            let ephemeralShared = try ephemeral.privateKey.sharedSecret(with: primaryEphemeral)
            let advRandom = Symmetric.randomBytes(32)
            let bundle = try PairingCode.wrapKeyBundle(
                ephemeralSharedSecret: ephemeralShared, ownIdentity: device.identityKey.publicKey,
                primaryIdentity: primaryIdentityKey, advRandom: advRandom,
                salt: Symmetric.randomBytes(32), nonce: Symmetric.randomBytes(12))
            let identityShared = try device.identityKey.privateKey.sharedSecret(with: primaryIdentityKey)
            let advSecret = PairingCode.advSecret(
                ephemeralSharedSecret: ephemeralShared, identitySharedSecret: identityShared, advRandom: advRandom)
            let node = Node("link_code_companion_reg", [
                Attribute("jid", .jid(JID(user: phone, server: JID.userServer))),
                Attribute("stage", "companion_finish"),
            ], content: .nodes([
                Node("link_code_pairing_wrapped_key_bundle", content: .bytes([UInt8](bundle))),
                Node("companion_identity_public", content: .bytes([UInt8](device.identityKey.publicKey.rawRepresentation))),
                Node("link_code_pairing_ref", content: .bytes([UInt8](ref ?? Data()))),
            ]))
            return (node, advSecret)
        }
    }
}
