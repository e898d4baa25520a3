import Foundation
import WABinary
import WAClient
import WASignal
import XCTest

/// LID addressing on receive: the sender's other JID (`sender_pn` on a
/// LID-addressed stanza, `sender_lid` on a phone-number one) and the mode
/// reach `ReceivedMessage`.
final class LIDAddressingTests: XCTestCase {
    func testTheSendersOtherAddressIsReported() async throws {
        let server = FakeServer()
        let bob0 = try await Party.make("15550002222", device: 0)
        let aliceLID = try await Party.make("9111", device: 1, server: JID.lidServer)
        let alicePN = try await Party.make("15550001111", device: 1)
        for party in [bob0, aliceLID, alicePN] { try await server.register(party) }
        var receiver = bob0.receiver()

        // LID-addressed: from is the LID device, sender_pn names its phone number.
        let viaLIDDelivered = try await sendDirect(aliceLID, to: bob0.user, text("lid"), id: "3EB0A1", server: server).1
        var viaLID = try XCTUnwrap(viaLIDDelivered[bob0.device])
        viaLID["sender_pn"] = .jid(alicePN.device)
        let (lidMessage, lidReceipt) = try expectMessage(try await receiver.receive(try wire(viaLID)))
        XCTAssertEqual(lidMessage.sender, aliceLID.device)
        XCTAssertEqual(lidMessage.addressingMode, .lid)
        XCTAssertEqual(lidMessage.senderAlt, alicePN.device)
        XCTAssertEqual(lidReceipt.jid("to"), aliceLID.user, "the receipt goes back the way it came")

        // Phone-number-addressed: sender_lid names the LID.
        let viaPNDelivered = try await sendDirect(alicePN, to: bob0.user, text("pn"), id: "3EB0A2", server: server).1
        var viaPN = try XCTUnwrap(viaPNDelivered[bob0.device])
        viaPN["sender_lid"] = .jid(aliceLID.device)
        let pnMessage = try expectMessage(try await receiver.receive(try wire(viaPN))).0
        XCTAssertEqual(pnMessage.addressingMode, .phoneNumber)
        XCTAssertEqual(pnMessage.senderAlt, aliceLID.device)

        // An "alternative" of the same kind is no alternative: ignored.
        let sameDelivered = try await sendDirect(alicePN, to: bob0.user, text("pn 2"), id: "3EB0A3", server: server).1
        var same = try XCTUnwrap(sameDelivered[bob0.device])
        same["sender_lid"] = .jid(JID(user: "15550009999", device: 1, server: JID.userServer))
        let sameMessage = try expectMessage(try await receiver.receive(try wire(same))).0
        XCTAssertNil(sameMessage.senderAlt)
    }
}
