import Foundation
import WABinary
import XCTest
@testable import WASignal

final class AddressTests: XCTestCase {
    func testAddressesAsWhatsAppFormsThem() {
        let phone = SignalAddress(jid: JID(user: "15551234567", device: 3, server: JID.userServer))
        XCTAssertEqual(phone.description, "15551234567:3")
        let primary = SignalAddress(jid: JID(user: "15551234567", server: JID.userServer))
        XCTAssertEqual(primary.description, "15551234567:0")
        let lid = SignalAddress(jid: JID(user: "123456789012345", device: 2, server: JID.lidServer))
        XCTAssertEqual(lid.description, "123456789012345_1:2")
        let hosted = SignalAddress(jid: JID(user: "15551234567", device: 99, server: JID.hostedServer))
        XCTAssertEqual(hosted.description, "15551234567_128:99")
        XCTAssertEqual(SignalAddress(parsing: "123456789012345_1:2"), lid)
        XCTAssertNil(SignalAddress(parsing: "nodevice"))
        XCTAssertNil(SignalAddress(parsing: ":3"))
        XCTAssertNil(SignalAddress(parsing: "a:b"))
        let name = SenderKeyName(groupID: "120363000000000001@g.us", sender: lid)
        XCTAssertEqual(name.description, "120363000000000001@g.us::123456789012345_1::2")
    }

    func testErrorCodesAreStable() {
        XCTAssertEqual(SignalError.Code.invalidMAC.rawValue, "signal.invalid_mac")
        XCTAssertEqual(SignalError.Code.untrustedIdentity.rawValue, "signal.untrusted_identity")
        XCTAssertEqual(SignalError.Code.duplicateMessage.rawValue, "signal.duplicate_message")
        XCTAssertEqual(SignalError.Code.noSession.rawValue, "signal.no_session")
        XCTAssertEqual(SignalError.Code.invalidVersion.rawValue, "signal.invalid_version")
    }
}
