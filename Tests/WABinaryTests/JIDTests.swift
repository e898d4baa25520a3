import XCTest
@testable import WABinary

final class JIDTests: XCTestCase {
    func testParseFormatRoundTrips() throws {
        let cases: [(String, JID, JID.Kind)] = [
            ("15551234567@s.whatsapp.net", JID(user: "15551234567", server: "s.whatsapp.net"), .user),
            ("15551234567:3@s.whatsapp.net", JID(user: "15551234567", device: 3, server: "s.whatsapp.net"), .user),
            ("15551234567.2:3@s.whatsapp.net", JID(user: "15551234567", agent: 2, device: 3, server: "s.whatsapp.net"), .user),
            ("102765716062358@lid", JID(user: "102765716062358", server: "lid"), .lid),
            ("102765716062358:12@lid", JID(user: "102765716062358", device: 12, server: "lid"), .lid),
            ("120363025246125244@g.us", JID(user: "120363025246125244", server: "g.us"), .group),
            ("15551234567-1600000000@g.us", JID(user: "15551234567-1600000000", server: "g.us"), .group),
            ("status@broadcast", JID.statusBroadcast, .status),
            ("1600000000@broadcast", JID(user: "1600000000", server: "broadcast"), .broadcastList),
            ("120363144038483540@newsletter", JID(user: "120363144038483540", server: "newsletter"), .newsletter),
            ("15551234567:99@hosted", JID(user: "15551234567", device: 99, server: "hosted"), .hosted),
            ("102765716062358:99@hosted.lid", JID(user: "102765716062358", device: 99, server: "hosted.lid"), .hostedLID),
            ("100012345:300@msgr", JID(user: "100012345", device: 300, server: "msgr"), .messenger),
            ("867051314767696@bot", JID(user: "867051314767696", server: "bot"), .bot),
            ("0@c.us", JID(user: "0", server: "c.us"), .legacyUser),
            ("s.whatsapp.net", JID.serverJID, .server),
            ("g.us", JID.groupServerJID, .server),
        ]
        for (text, expected, kind) in cases {
            let jid = try JID(parsing: text)
            XCTAssertEqual(jid, expected, text)
            XCTAssertEqual(jid.description, text)
            XCTAssertEqual(jid.kind, kind, text)
            XCTAssertEqual(try JID(parsing: jid.description), jid)
        }
    }

    func testRejections() {
        let bad = [
            "", "@s.whatsapp.net", "1@2@s.whatsapp.net", "123@", "123@S.WHATSAPP.NET", "123@.net", "123@net.",
            "12a@s.whatsapp.net",          // phone-number servers take digits only
            "123:@s.whatsapp.net", "123:x@s.whatsapp.net", "123:-1@s.whatsapp.net", "123:03@s.whatsapp.net",
            "123:256@s.whatsapp.net",      // AD device is one byte on the wire
            "123:70000@msgr",              // over 16 bits
            "123:1@g.us",                  // groups have no devices
            "123.1:2@s.whatsapp.net",      // 1 is the LID domain, not an agent
            "123.0:2@s.whatsapp.net", "123.300:2@s.whatsapp.net", "123.2:1@lid",
            ":3@s.whatsapp.net", "a b@g.us", "ü@g.us", "123@s.whatsapp.net/x",
            String(repeating: "1", count: 300) + "@s.whatsapp.net",
        ]
        for text in bad {
            XCTAssertThrowsError(try JID(parsing: text), text) { error in
                XCTAssertEqual((error as? WABinaryError)?.code, .invalidJID, text)
            }
        }
    }

    func testHelpers() throws {
        let device = try JID(parsing: "102765716062358:12@lid")
        XCTAssertTrue(device.isAD)
        XCTAssertEqual(device.nonAD.description, "102765716062358@lid")
        XCTAssertEqual(device.signalAddressUser, "102765716062358_1")
        XCTAssertEqual(try JID(parsing: "1555:2@s.whatsapp.net").signalAddressUser, "1555")
        XCTAssertEqual(try JID(parsing: "1555:2@hosted").signalAddressUser, "1555_128")
    }

    func testUnencodableJIDsAreTypedErrors() {
        let cases = [
            JID(user: "1", device: 300, server: "s.whatsapp.net"),   // device over one byte
            JID(user: "1", agent: 1, device: 2, server: "s.whatsapp.net"), // agent collides with the LID domain
            JID(user: "1", device: 2, server: "g.us"),
            JID(user: "1", server: ""),
        ]
        for jid in cases {
            XCTAssertThrowsError(try BinaryEncoder.encode(Node("iq", [Attribute("to", .jid(jid))]))) { error in
                XCTAssertEqual((error as? WABinaryError)?.code, .invalidJID, "\(jid)")
            }
        }
    }
}
