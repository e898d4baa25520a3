import Foundation
import WABinary
import WAClient
import XCTest
@testable import BridgeStore

/// Privacy tokens and the NCT salt in `session.sqlite`, on real files.
final class PrivacyTokenStoreTests: XCTestCase {
    let alice = JID(user: "100000000000001", server: JID.lidServer)
    let bob = JID(user: "15550002222", server: JID.userServer)

    func testTokensAndSaltRoundTripAcrossAReopenAndLeaveWithAWipe() async throws {
        let dir = try makeTemporaryDirectory(self)
        let master = MasterKey.generate()
        var store = try openStore(dir, masterKey: master)
        let id = try DeviceID("tokens")
        try await store.createDevice(id: id)
        var keys = try await store.device(id).keys
        let token = Data((0..<48).map { UInt8($0 ^ 0x5A) })
        let received = Date(timeIntervalSince1970: 1_796_000_000)
        try await keys.storePrivacyTokens([PrivacyToken(user: JID(user: alice.user, device: 4, server: JID.lidServer), token: token, timestamp: received)])
        try await keys.setPrivacyTokenSenderTimestamp(Date(timeIntervalSince1970: 1_796_000_100), for: alice)
        // A sender timestamp alone (we issued ours, they never sent theirs).
        try await keys.setPrivacyTokenSenderTimestamp(Date(timeIntervalSince1970: 1_796_000_200), for: bob)
        let salt = Data(repeating: 0xA5, count: 32)
        try await keys.storeNCTSalt(salt)

        store.closeAll()
        let raw = try rawBytes(of: dir.appendingPathComponent("data/devices/tokens/session.sqlite"))
        XCTAssertNil(raw.range(of: token), "the token is sealed on disk")
        XCTAssertNil(raw.range(of: salt), "the salt is sealed on disk")
        store = try openStore(dir, masterKey: master)
        keys = try await store.device(id).keys
        let loaded = try await keys.privacyToken(for: alice)
        XCTAssertEqual(loaded?.token, token, "looked up by user, device dropped")
        XCTAssertEqual(loaded?.timestamp, received)
        XCTAssertEqual(loaded?.senderTimestamp, Date(timeIntervalSince1970: 1_796_000_100))
        let onlySent = try await keys.privacyToken(for: bob)
        XCTAssertEqual(onlySent?.token, Data())
        XCTAssertEqual(onlySent?.senderTimestamp, Date(timeIntervalSince1970: 1_796_000_200))
        let loadedSalt = try await keys.nctSalt()
        XCTAssertEqual(loadedSalt, salt)

        // A newer token keeps the sender timestamp it does not carry.
        try await keys.storePrivacyTokens([PrivacyToken(user: alice, token: Data([7]), timestamp: received.addingTimeInterval(60))])
        let newer = try await keys.privacyToken(for: alice)
        XCTAssertEqual(newer?.token, Data([7]))
        XCTAssertEqual(newer?.senderTimestamp, Date(timeIntervalSince1970: 1_796_000_100))

        // Expiry: a row goes once both its timestamps are before the cutoff.
        let gone = try await keys.deleteExpiredPrivacyTokens(before: Date(timeIntervalSince1970: 1_796_000_150))
        XCTAssertEqual(gone, 1, "alice's row (both older) goes, bob's (issued later) stays")
        let aliceAfter = try await keys.privacyToken(for: alice)
        XCTAssertNil(aliceAfter)

        // App state can remove the salt; logout wipes everything.
        try await keys.storeNCTSalt(nil)
        let cleared = try await keys.nctSalt()
        XCTAssertNil(cleared)
        try await keys.storeNCTSalt(salt)
        try await keys.wipe()
        let afterWipe = try await keys.privacyToken(for: bob)
        XCTAssertNil(afterWipe)
        let saltAfterWipe = try await keys.nctSalt()
        XCTAssertNil(saltAfterWipe)
    }
}
