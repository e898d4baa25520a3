import Foundation
import WABinary
import WAClient
import XCTest

/// The privacy_token notification parser, token expiry and the cstoken derivation.
final class PrivacyTokenTests: XCTestCase {
    let peer = JID(user: "15550002222", server: JID.userServer)
    let peerLID = JID(user: "100000000000002", server: JID.lidServer)

    func notification(_ attributes: [Attribute], tokens: [Node]?) throws -> Node {
        try wire(Node("notification", [Attribute("type", "privacy_token")] + attributes,
                      content: tokens.map { .nodes([Node("tokens", content: .nodes($0))]) } ?? .none))
    }

    func testANotificationGivesItsTrustedContactTokens() throws {
        let node = try notification([Attribute("from", .jid(peer)), Attribute("sender_lid", .jid(peerLID))], tokens: [
            Node("token", [Attribute("type", "trusted_contact"), Attribute("t", "1796000000")], content: .bytes([1, 2, 3])),
            Node("token", [Attribute("type", "other_kind"), Attribute("t", "1796000000")], content: .bytes([9])),
        ])
        let parsed = try PrivacyTokenNotification(parsing: node)
        XCTAssertEqual(parsed.sender, peer)
        XCTAssertEqual(parsed.senderLID, peerLID)
        XCTAssertEqual(parsed.tokens, [.init(token: Data([1, 2, 3]), timestamp: Date(timeIntervalSince1970: 1_796_000_000))])
    }

    func testBadNotificationsAreTypedErrors() throws {
        let good = Node("token", [Attribute("type", "trusted_contact"), Attribute("t", "1796000000")], content: .bytes([1]))
        let cases: [(Node, WAClientError.Code)] = [
            (try notification([], tokens: [good]), .stanzaMalformed),
            (try notification([Attribute("from", .jid(peer))], tokens: nil), .stanzaMalformed),
            (try notification([Attribute("from", .jid(peer)), Attribute("sender_lid", .jid(peer))], tokens: [good]), .stanzaMalformed),
            (try notification([Attribute("from", .jid(peer))], tokens: [Node("token", [Attribute("type", "trusted_contact"), Attribute("t", "1")])]), .stanzaMalformed),
            (try notification([Attribute("from", .jid(peer))], tokens: [Node("token", [Attribute("type", "trusted_contact"), Attribute("t", "soon")], content: .bytes([1]))]), .stanzaMalformed),
            (try notification([Attribute("from", .jid(peer))], tokens: Array(repeating: good, count: PrivacyTokenNotification.maxTokens + 1)), .limitExceeded),
            (try wire(Node("notification", [Attribute("type", "devices"), Attribute("from", .jid(peer))])), .stanzaMalformed),
        ]
        for (node, code) in cases {
            XCTAssertThrowsError(try PrivacyTokenNotification(parsing: node)) { XCTAssertEqual(($0 as? WAClientError)?.code, code) }
        }
    }

    func testTokensExpireAfterFourWeeklyBuckets() {
        let now = Date(timeIntervalSince1970: 1_796_000_000)
        XCTAssertFalse(PrivacyTokens.isExpired(now.addingTimeInterval(-86_400), now: now))
        XCTAssertFalse(PrivacyTokens.isExpired(now.addingTimeInterval(-14 * 86_400), now: now))
        XCTAssertTrue(PrivacyTokens.isExpired(now.addingTimeInterval(-29 * 86_400), now: now))
    }

    /// Known answer computed independently (Python's hmac) for whatsmeow's cstoken.go rule:
    /// HMAC-SHA256(nct_salt, "<lid>@lid").
    func testCSTokenKnownAnswer() throws {
        let salt = Data(0..<32)
        let token = try XCTUnwrap(PrivacyTokens.csToken(salt: salt, recipientLID: JID(user: "100000000000001", device: 3, server: JID.lidServer)))
        XCTAssertEqual(token.map { String(format: "%02x", $0) }.joined(), "318bf8afe355da9dd96f4869c97e500b88788365f3b4972a0dcf486f080859bb")
        XCTAssertNil(PrivacyTokens.csToken(salt: Data(), recipientLID: peerLID))
        XCTAssertNil(PrivacyTokens.csToken(salt: salt, recipientLID: peer))
    }
}
