import AMQP
@testable import Bridge
import BridgeStore
import Foundation
import WABinary
import WACrypto
import WAClient
import WASim
import XCTest

/// Issue 14: a send that reaches some recipient devices and not others says which it missed,
/// in the command's result and in its `sent` status, instead of skipping them silently.
final class SendFailureListTests: XCTestCase {
    /// The peer has a linked device the server holds no prekey bundle for: the phone gets the
    /// message; the result and `message.status` `sent` list the other device with
    /// `NO_PREKEY_BUNDLE`, valid against the schema.
    func testASkippedDeviceIsListedInTheResultAndTheSentStatus() async throws {
        let rig = try await CommandRig.start()
        let me = "15550390001", peer = "15550390002"
        _ = try await rig.link("d-fail", phone: me)
        await rig.h.sim.createPhone(number: peer)
        let broken = await rig.h.sim.provisionDevice(
            phone: peer, noiseKey: Curve25519KeyPair.generate().publicKey, identityKey: Curve25519KeyPair.generate().publicKey,
            registrationID: 7)
        try await rig.send(["id": "f1", "kind": "send.text", "to": .string("+\(peer)"), "text": "hi there"], to: "d-fail")
        let result = try await rig.reply(for: "f1")
        XCTAssertEqual(result["status"], "sent")
        // The device as the send addressed it: the peer is LID-migrated, so its LID device.
        let peerPhone = await rig.h.sim.phone(peer)
        let peerLID = try XCTUnwrap(peerPhone?.lid)
        let brokenLID = JID(user: peerLID.user, device: broken.device, server: JID.lidServer)
        let expected: JSONValue = .array([["device": .string(brokenLID.description), "code": "NO_PREKEY_BUNDLE"]])
        XCTAssertEqual(result["failed_devices"], expected)
        try await eventually(10, "the phone got it") {
            await rig.h.sim.receivedMessages(phone: peer).contains { $0.text == "hi there" }
        }
        let sent = rig.events.all.filter { $0.type == .messageStatus && $0.data["command_id"] == "f1" && $0.data["status"] == "sent" }
        XCTAssertEqual(sent.count, 1)
        XCTAssertEqual(sent.first?.data["failed_devices"], expected)
        let asReceived = sent.map {
            ReceivedEvent(routingKey: "d-fail.message.status", properties: AMQPProperties(), body: $0.encoded(),
                          document: JSONValue.parse($0.encoded()) ?? .null)
        }
        XCTAssertEqual(try schemaProblems(asReceived), [])
        await rig.stop()
    }
}
