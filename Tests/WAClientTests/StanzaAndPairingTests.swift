import Foundation
import WABinary
import WAClient
import WACrypto
import WAProto
import XCTest

/// Pure pieces of the engine: stream outcomes, payloads, QR strings, pair-success checks, phone numbers.
final class StanzaAndPairingTests: XCTestCase {
    func testStreamErrorsAndFailures() {
        XCTAssertEqual(StreamOutcome.streamError(Node("stream:error", [Attribute("code", "515")])), .restartRequired)
        XCTAssertEqual(StreamOutcome.streamError(Node("stream:error", children: [
            Node("conflict", [Attribute("type", "replaced")]),
        ])), .replaced)
        XCTAssertEqual(StreamOutcome.streamError(Node("stream:error", attributes: ["code": "401"], children: [
            Node("conflict", [Attribute("type", "device_removed")]),
        ])), .deviceRemoved)
        XCTAssertEqual(StreamOutcome.streamError(Node("stream:error", [Attribute("code", "503")])), .streamError(code: "503"))
        XCTAssertEqual(StreamOutcome.streamError(Node("stream:error")), .streamError(code: "unknown"))
        XCTAssertEqual(StreamOutcome.streamError(Node("stream:error", [Attribute("code", "401")])), .streamError(code: "401"),
                       "a 401 without device_removed does not wipe the device")
        XCTAssertEqual(StreamOutcome.streamError(Node("stream:error", children: [Node("xml-not-well-formed")])),
                       .streamError(code: "xml-not-well-formed"))
        let ban = StreamOutcome.failure(Node("failure", [Attribute("reason", "402"), Attribute("code", "101"), Attribute("expire", "3600")]))
        XCTAssertEqual(ban, .failure(LoginFailure(reason: 402, banCode: 101, expiresIn: 3600)))
        if case .failure(let f) = ban { XCTAssertEqual(f.kind, .temporaryBan) }
        XCTAssertEqual(LoginFailure(reason: 405).kind, .clientOutdated)
        XCTAssertEqual(LoginFailure(reason: 403).kind, .locked)
        XCTAssertEqual(LoginFailure(reason: 406).kind, .banned)
        XCTAssertEqual(LoginFailure(reason: 401).kind, .loggedOut)
        XCTAssertFalse(LoginFailure(reason: 503).isPermanent)
    }

    func testRegistrationPayload() throws {
        let device = DeviceRecord.generate()
        let bytes = try ClientPayloadBuilder.registration(device, configuration: WAClientConfiguration())
        let payload = try WAWa6_ClientPayload(serializedBytes: bytes)
        XCTAssertFalse(payload.hasUsername)
        XCTAssertEqual(payload.userAgent.platform, .web)
        XCTAssertEqual(payload.userAgent.appVersion.primary, 2)
        XCTAssertEqual(payload.userAgent.appVersion.secondary, 3000)
        let data = payload.devicePairingData
        XCTAssertEqual(data.eRegid.count, 4)
        XCTAssertEqual(data.eRegid.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }, device.registrationID)
        XCTAssertEqual(data.eKeytype, Data([5]))
        XCTAssertEqual(data.eIdent, device.identityKey.publicKey.rawRepresentation)
        XCTAssertEqual(data.eSkeyID, Data([0, 0, 1]))
        XCTAssertEqual(data.eSkeyVal, device.signedPreKey.keyPair.publicKey.rawRepresentation)
        XCTAssertTrue(XEdDSA.verify(data.eSkeySig, for: device.signedPreKey.keyPair.publicKey.signalSerialized, publicKey: device.identityKey.publicKey))
        XCTAssertEqual(data.buildHash.count, 16)
        let props = try WACompanionReg_DeviceProps(serializedBytes: data.deviceProps)
        XCTAssertEqual(props.os, "wabridge")
    }

    func testLoginPayload() throws {
        var device = DeviceRecord.generate()
        XCTAssertThrowsError(try ClientPayloadBuilder.login(device, configuration: WAClientConfiguration()))
        device.jid = try JID(parsing: "15551234567:3@s.whatsapp.net")
        let payload = try WAWa6_ClientPayload(serializedBytes: try ClientPayloadBuilder.login(device, configuration: WAClientConfiguration()))
        XCTAssertEqual(payload.username, 15_551_234_567)
        XCTAssertEqual(payload.device, 3)
        XCTAssertTrue(payload.passive)
        XCTAssertTrue(payload.pull)
        XCTAssertFalse(payload.hasDevicePairingData)
    }

    func testQRStringRoundTripsInBothForms() throws {
        let device = DeviceRecord.generate()
        for link in [false, true] {
            let text = Pairing.qrString(ref: "2@abc==", device: device, linkFormat: link)
            XCTAssertEqual(text.hasPrefix("https://wa.me/settings/linked_devices#"), link)
            let parsed = try Pairing.parseQR(text)
            XCTAssertEqual(parsed.ref, "2@abc==")
            XCTAssertEqual(parsed.noiseKey, device.noiseKey.publicKey)
            XCTAssertEqual(parsed.identityKey, device.identityKey.publicKey)
            XCTAssertEqual(parsed.advSecret, device.advSecret)
            XCTAssertEqual(parsed.platformID, link ? 1 : nil)
        }
        XCTAssertThrowsError(try Pairing.parseQR("nonsense"))
    }

    /// What a phone sends, signed with `account`, HMAC'd with `advSecret`.
    private func phoneIdentity(for device: DeviceRecord, account: Curve25519KeyPair, advSecret: Data, tamperSignature: Bool = false) throws -> Data {
        var details = WAAdv_ADVDeviceIdentity()
        details.rawID = 42
        details.keyIndex = 7
        let detailsBytes: Data = try details.serializedBytes()
        var signed = WAAdv_ADVSignedDeviceIdentity()
        signed.details = detailsBytes
        signed.accountSignatureKey = account.publicKey.rawRepresentation
        var signature = try XEdDSA.sign(Data([6, 0]) + detailsBytes + device.identityKey.publicKey.rawRepresentation, privateKey: account.privateKey)
        if tamperSignature { signature[5] ^= 1 }
        signed.accountSignature = signature
        let signedBytes: Data = try signed.serializedBytes()
        var container = WAAdv_ADVSignedDeviceIdentityHMAC()
        container.details = signedBytes
        container.hmac = Symmetric.hmacSHA256(key: advSecret, signedBytes)
        return try container.serializedBytes()
    }

    func testPairSuccessIsCheckedAndCountersigned() throws {
        let device = DeviceRecord.generate()
        let account = Curve25519KeyPair.generate()
        let jid = try JID(parsing: "15551234567:2@s.whatsapp.net")
        let identity = try phoneIdentity(for: device, account: account, advSecret: device.advSecret)
        let result = try Pairing.handlePairSuccess(deviceIdentity: identity, device: device, jid: jid, lid: nil, platform: "android", businessName: "")
        XCTAssertEqual(result.keyIndex, 7)
        XCTAssertEqual(result.device.jid, jid)
        XCTAssertEqual(result.device.account?.accountSignatureKey, account.publicKey.rawRepresentation)
        let sent = try WAAdv_ADVSignedDeviceIdentity(serializedBytes: result.signedIdentity)
        XCTAssertFalse(sent.hasAccountSignatureKey, "the account key is left out of pair-device-sign")
        let message = Data([6, 1]) + sent.details + device.identityKey.publicKey.rawRepresentation + account.publicKey.rawRepresentation
        XCTAssertTrue(XEdDSA.verify(sent.deviceSignature, for: message, publicKey: device.identityKey.publicKey))

        let wrongSecret = try phoneIdentity(for: device, account: account, advSecret: Data(repeating: 1, count: 32))
        XCTAssertThrowsError(try Pairing.handlePairSuccess(deviceIdentity: wrongSecret, device: device, jid: jid, lid: nil, platform: "", businessName: "")) {
            XCTAssertEqual($0 as? Pairing.PairError, Pairing.PairError(code: 401, text: "hmac-mismatch"))
        }
        let badSignature = try phoneIdentity(for: device, account: account, advSecret: device.advSecret, tamperSignature: true)
        XCTAssertThrowsError(try Pairing.handlePairSuccess(deviceIdentity: badSignature, device: device, jid: jid, lid: nil, platform: "", businessName: "")) {
            XCTAssertEqual($0 as? Pairing.PairError, Pairing.PairError(code: 401, text: "signature-mismatch"))
        }
        XCTAssertThrowsError(try Pairing.handlePairSuccess(deviceIdentity: Data([1, 2, 3]), device: device, jid: jid, lid: nil, platform: "", businessName: ""))
    }

    func testPhoneNumbers() throws {
        XCTAssertEqual(try Pairing.normalizePhoneNumber("+1 (555) 123-4567"), "15551234567")
        XCTAssertEqual(try Pairing.normalizePhoneNumber("491701234567"), "491701234567")
        for bad in ["0170 1234567", "12345", "", "+1 555 CALL NOW", "1234567890123456", "+49/170/1234567"] {
            XCTAssertThrowsError(try Pairing.normalizePhoneNumber(bad), bad) {
                XCTAssertEqual(($0 as? WAClientError)?.code, .invalidPhoneNumber)
            }
        }
    }

    func testCodeSessionMatchesThePhonesDerivation() throws {
        let device = DeviceRecord.generate()
        var session = Pairing.CodeSession(phone: "15551234567")
        session.ref = Data("ref".utf8)
        let hello = try session.helloNode(device: device, platformName: "Chrome (Linux)")
        XCTAssertEqual(hello.string("stage"), "companion_hello")
        let wrapped = try XCTUnwrap(hello.child("link_code_pairing_wrapped_companion_ephemeral_pub")?.bytes)
        // The phone unwraps the companion key with the code and answers with its own.
        XCTAssertEqual(try session.code.unwrap(Data(wrapped)), session.ephemeral.publicKey)
        let primaryEphemeral = Curve25519KeyPair.generate()
        let primaryIdentity = Curve25519KeyPair.generate()
        let (finish, advSecret) = try session.finish(
            wrappedPrimaryEphemeral: try session.code.wrap(primaryEphemeral.publicKey),
            primaryIdentity: primaryIdentity.publicKey.rawRepresentation, device: device)
        XCTAssertEqual(finish.string("stage"), "companion_finish")
        let bundle = Data(try XCTUnwrap(finish.child("link_code_pairing_wrapped_key_bundle")?.bytes))
        let shared = try primaryEphemeral.privateKey.sharedSecret(with: session.ephemeral.publicKey)
        let key = Symmetric.hkdfSHA256(inputKeyMaterial: shared, salt: bundle.prefix(32),
                                       info: Data("link_code_pairing_key_bundle_encryption_key".utf8), outputByteCount: 32)
        let plain = try Symmetric.aesGCMOpen(bundle.dropFirst(44), key: key, nonce: bundle.dropFirst(32).prefix(12))
        XCTAssertEqual(plain.prefix(32), device.identityKey.publicKey.rawRepresentation)
        let identityShared = try primaryIdentity.privateKey.sharedSecret(with: device.identityKey.publicKey)
        XCTAssertEqual(PairingCode.advSecret(ephemeralSharedSecret: shared, identitySharedSecret: identityShared, advRandom: plain.suffix(32)), advSecret)
    }

    func testDeviceRecordNeverPrintsKeys() {
        let device = DeviceRecord.generate()
        let text = "\(device)"
        XCTAssertFalse(text.contains(device.advSecret.base64EncodedString()))
        XCTAssertTrue(text.contains("unpaired"))
        XCTAssertGreaterThan(device.registrationID, 0)
        XCTAssertLessThanOrEqual(device.registrationID, 16384)
    }
}
