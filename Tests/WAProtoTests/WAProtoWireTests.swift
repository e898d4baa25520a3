import Foundation
import SwiftProtobuf
import XCTest
import WAProto

/// Known-bytes tests: the expected bytes are worked out by hand from the
/// field numbers and wire types (tag = field << 3 | wire type), so a wrong
/// field number in a .proto file shows up here.
final class WAProtoWireTests: XCTestCase {
    func testClientHelloEncodesToHandDerivedBytes() throws {
        var hello = WAWa6_HandshakeMessage()
        hello.clientHello.ephemeral = Data(repeating: 0x01, count: 32)
        let bytes = try hello.serializedBytes() as [UInt8]
        // field 2 (clientHello), LEN 34 → field 1 (ephemeral), LEN 32, key.
        let expected: [UInt8] = [0x12, 0x22, 0x0A, 0x20] + [UInt8](repeating: 0x01, count: 32)
        XCTAssertEqual(bytes, expected)
    }

    func testServerHelloDecodesFromHandDerivedBytes() throws {
        // field 3 (serverHello) LEN 9: ephemeral=aabb, static=cc, payload=empty
        let wire: [UInt8] = [0x1A, 0x09, 0x0A, 0x02, 0xAA, 0xBB, 0x12, 0x01, 0xCC, 0x1A, 0x00]
        let message = try WAWa6_HandshakeMessage(serializedBytes: wire)
        XCTAssertTrue(message.hasServerHello)
        XCTAssertFalse(message.hasClientHello)
        XCTAssertEqual(message.serverHello.ephemeral, Data([0xAA, 0xBB]))
        XCTAssertEqual(message.serverHello.static, Data([0xCC]))
        XCTAssertTrue(message.serverHello.hasPayload, "proto2 keeps presence of an empty field")
        XCTAssertEqual(try message.serializedBytes() as [UInt8], wire)
    }

    func testClientFinishFieldNumbers() throws {
        var finish = WAWa6_HandshakeMessage()
        finish.clientFinish.static = Data([0x01])
        finish.clientFinish.payload = Data([0x02, 0x03])
        let bytes = try finish.serializedBytes() as [UInt8]
        XCTAssertEqual(bytes, [0x22, 0x07, 0x0A, 0x01, 0x01, 0x12, 0x02, 0x02, 0x03])
    }

    func testCertChainDetailsDecode() throws {
        // Details: serial=7 (08 07), issuerSerial=0 (10 00), key=[5] (1a 01 05),
        // notBefore=1 (20 01), notAfter=300 (28 ac 02)
        let details: [UInt8] = [0x08, 0x07, 0x10, 0x00, 0x1A, 0x01, 0x05, 0x20, 0x01, 0x28, 0xAC, 0x02]
        var chain = WACert_CertChain()
        chain.intermediate.details = Data(details)
        chain.intermediate.signature = Data([0x99])
        let wire = try chain.serializedBytes() as [UInt8]
        XCTAssertEqual(Array(wire.prefix(4)), [0x12, 0x11, 0x0A, 0x0C], "intermediate is field 2, details field 1")

        let back = try WACert_CertChain(serializedBytes: wire)
        XCTAssertFalse(back.hasLeaf)
        let parsed = try WACert_CertChain.NoiseCertificate.Details(serializedBytes: back.intermediate.details)
        XCTAssertEqual(parsed.serial, 7)
        XCTAssertTrue(parsed.hasIssuerSerial)
        XCTAssertEqual(parsed.issuerSerial, 0)
        XCTAssertEqual(parsed.key, Data([0x05]))
        XCTAssertEqual(parsed.notBefore, 1)
        XCTAssertEqual(parsed.notAfter, 300)
    }

    func testADVSignedDeviceIdentityHMACRoundTrip() throws {
        var identity = WAAdv_ADVDeviceIdentity()
        identity.rawID = 0x1234
        identity.keyIndex = 3
        identity.deviceType = .hosted
        var signed = WAAdv_ADVSignedDeviceIdentity()
        signed.details = try identity.serializedData()
        signed.accountSignatureKey = Data(repeating: 7, count: 32)
        var hmac = WAAdv_ADVSignedDeviceIdentityHMAC()
        hmac.details = try signed.serializedData()
        hmac.hmac = Data(repeating: 9, count: 32)
        hmac.accountType = .hosted

        let back = try WAAdv_ADVSignedDeviceIdentityHMAC(serializedBytes: try hmac.serializedBytes() as [UInt8])
        XCTAssertEqual(back, hmac)
        let inner = try WAAdv_ADVDeviceIdentity(serializedBytes: try WAAdv_ADVSignedDeviceIdentity(serializedBytes: back.details).details)
        XCTAssertEqual(inner.rawID, 0x1234)
        XCTAssertEqual(inner.deviceType, .hosted)
        // ADVDeviceIdentity: rawID 0x1234 = varint b4 24; keyIndex field 3; deviceType field 5 = 1.
        XCTAssertEqual(try identity.serializedBytes() as [UInt8], [0x08, 0xB4, 0x24, 0x18, 0x03, 0x28, 0x01])
    }

    func testClientPayloadScalarWireTypes() throws {
        var payload = WAWa6_ClientPayload()
        payload.username = 15551234567
        payload.passive = true
        payload.sessionID = -2        // sfixed32: 4 little-endian bytes, wire type 5
        payload.device = 3
        payload.userAgent.platform = .web
        let bytes = try payload.serializedBytes() as [UInt8]
        // 15551234567 as varint
        var varint: [UInt8] = []
        var v: UInt64 = 15551234567
        while v >= 0x80 { varint.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
        varint.append(UInt8(v))
        let expected: [UInt8] = [0x08] + varint + [0x18, 0x01]
            + [0x2A, 0x02, 0x08, 0x0E]              // userAgent (5) { platform (1) = WEB 14 }
            + [0x4D, 0xFE, 0xFF, 0xFF, 0xFF]        // sessionID (9), fixed32
            + [0x90, 0x01, 0x03]                    // device (18) = 3
        XCTAssertEqual(bytes, expected)
    }

    func testMessageFieldsAndNesting() throws {
        var conversation = WAE2E_Message()
        conversation.conversation = "hi"
        XCTAssertEqual(try conversation.serializedBytes() as [UInt8], [0x0A, 0x02, 0x68, 0x69])

        var reaction = WAE2E_Message()
        reaction.reactionMessage.key.remoteJid = "a"
        reaction.reactionMessage.text = "👍"
        let bytes = try reaction.serializedBytes() as [UInt8]
        // field 46, LEN → tag varint 46<<3|2 = 370 = f2 02
        XCTAssertEqual(Array(bytes.prefix(2)), [0xF2, 0x02])

        var quoted = WAE2E_Message()
        quoted.extendedTextMessage.text = "reply"
        quoted.extendedTextMessage.contextInfo.stanzaID = "ABC"
        quoted.extendedTextMessage.contextInfo.mentionedJid = ["1@s.whatsapp.net", "2@s.whatsapp.net"]
        quoted.extendedTextMessage.contextInfo.quotedMessage.conversation = "original"
        let back = try WAE2E_Message(serializedBytes: try quoted.serializedBytes() as [UInt8])
        XCTAssertEqual(back, quoted)
        XCTAssertEqual(back.extendedTextMessage.contextInfo.quotedMessage.conversation, "original")
    }

    func testUnknownFieldsSurviveTrimmedSchema() throws {
        // conversation "x" followed by field 131 (not in our trimmed schema), varint 5.
        let wire: [UInt8] = [0x0A, 0x01, 0x78, 0x98, 0x08, 0x05]
        let message = try WAE2E_Message(serializedBytes: wire)
        XCTAssertEqual(message.conversation, "x")
        XCTAssertEqual(try message.serializedBytes() as [UInt8], wire)
    }

    func testProtocolMessageRevokeAndEdit() throws {
        var revoke = WAE2E_Message()
        revoke.protocolMessage.type = .revoke
        revoke.protocolMessage.key.id = "3EB0"
        revoke.protocolMessage.key.fromMe = true
        var edit = WAE2E_Message()
        edit.protocolMessage.type = .messageEdit
        edit.protocolMessage.editedMessage.conversation = "fixed"
        for message in [revoke, edit] {
            XCTAssertEqual(try WAE2E_Message(serializedBytes: try message.serializedBytes() as [UInt8]), message)
        }
        // protocolMessage (12) LEN … type (2) = MESSAGE_EDIT (14)
        let editBytes = try edit.serializedBytes() as [UInt8]
        XCTAssertEqual(editBytes[0], 0x62)
        XCTAssertTrue(editBytes.contains(0x0E))
    }

    func testSignalWireFieldNumbers() throws {
        var prekey = SignalWire_PreKeySignalMessage()
        prekey.registrationID = 1
        prekey.preKeyID = 2
        prekey.signedPreKeyID = 3
        prekey.baseKey = Data([0x05])
        // Serialized in field-number order: preKeyID(1), baseKey(2), registrationID(5), signedPreKeyID(6).
        XCTAssertEqual(try prekey.serializedBytes() as [UInt8], [0x08, 0x02, 0x12, 0x01, 0x05, 0x28, 0x01, 0x30, 0x03])

        var skdm = SignalWire_SenderKeyDistributionMessage()
        skdm.id = 9
        skdm.iteration = 1
        skdm.chainKey = Data([0xAA])
        skdm.signingKey = Data([0xBB])
        XCTAssertEqual(try skdm.serializedBytes() as [UInt8], [0x08, 0x09, 0x10, 0x01, 0x1A, 0x01, 0xAA, 0x22, 0x01, 0xBB])
    }

    func testTruncatedInputIsAnError() {
        XCTAssertThrowsError(try WAWa6_HandshakeMessage(serializedBytes: [0x1A, 0x09, 0x0A]))
    }
}
