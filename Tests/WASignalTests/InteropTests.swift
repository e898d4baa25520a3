import Foundation
import WACrypto
import XCTest
@testable import WASignal

/// WASignal against python-axolotl, an independent libsignal v3 port: both
/// roles of X3DH, the ratchet under reordering, gaps and many turns, and
/// sender keys, each in both directions. A missing peer venv fails the test.
final class InteropTests: XCTestCase {
    private let peerAddress = SignalAddress(name: "15557770000", deviceID: 3)

    private func text(_ i: Int, _ who: String) -> Data { Data("\(who) message \(i) ".utf8) + Data(repeating: UInt8(i & 0xFF), count: i % 40) }

    func testSwiftInitiatesFromPeerBundle() async throws {
        let peer = try AxolotlPeer()
        let swift = try await TestDevice.make(name: "15551110000", device: 1)
        let bundle = try peer.bundle(deviceID: peerAddress.deviceID)
        try await SessionBuilder(store: swift.store, address: peerAddress).process(bundle: bundle)
        let cipher = swift.cipher(with: peerAddress)

        // Until the peer answers, every message repeats the X3DH header.
        for i in 0..<3 {
            let message = try await cipher.encrypt(text(i, "swift"))
            XCTAssertEqual(message.type, "pkmsg")
            XCTAssertEqual(message.serialized.first, 0x33)
            XCTAssertEqual(try peer.decrypt(message, from: swift.address), text(i, "swift"))
        }
        for i in 0..<2 {
            let answer = try peer.encrypt(text(i, "peer"), to: swift.address)
            XCTAssertEqual(answer.type, "msg")
            let plaintext = try await cipher.decrypt(answer)
            XCTAssertEqual(plaintext, text(i, "peer"))
        }
        let after = try await cipher.encrypt(text(9, "swift"))
        XCTAssertEqual(after.type, "msg", "the peer's answer acknowledges the session")
        XCTAssertEqual(try peer.decrypt(after, from: swift.address), text(9, "swift"))
        let pinned = await swift.store.identity(for: peerAddress)
        XCTAssertEqual(pinned, try peer.identity)
        try peer.finish()
    }

    func testPeerInitiatesFromSwiftBundle() async throws {
        let peer = try AxolotlPeer()
        let swift = try await TestDevice.make(name: "15551110000", device: 1)
        try peer.build(with: try await swift.bundle(preKeyID: 4), for: swift.address)
        let cipher = swift.cipher(with: peerAddress)

        for i in 0..<2 {
            let message = try peer.encrypt(text(i, "peer"), to: swift.address)
            XCTAssertEqual(message.type, "pkmsg")
            let plaintext = try await cipher.decrypt(message)
            XCTAssertEqual(plaintext, text(i, "peer"))
        }
        let used = await swift.store.loadPreKey(id: 4)
        XCTAssertNil(used, "the one-time prekey is deleted after a successful decrypt")
        let untouched = await swift.store.loadPreKey(id: 5)
        XCTAssertNotNil(untouched)

        let answer = try await cipher.encrypt(text(0, "swift"))
        XCTAssertEqual(answer.type, "msg")
        XCTAssertEqual(try peer.decrypt(answer, from: swift.address), text(0, "swift"))
        let next = try peer.encrypt(text(5, "peer"), to: swift.address)
        XCTAssertEqual(next.type, "msg")
        let plaintext = try await cipher.decrypt(next)
        XCTAssertEqual(plaintext, text(5, "peer"))

        // Without a one-time prekey (WhatsApp's server can run out of them).
        let other = try await TestDevice.make(name: "15551110001", device: 2)
        try peer.build(with: try await other.bundle(preKeyID: nil), for: other.address)
        let first = try peer.encrypt(text(1, "peer"), to: other.address)
        let decrypted = try await other.cipher(with: peerAddress).decrypt(first)
        XCTAssertEqual(decrypted, text(1, "peer"))
        try peer.finish()
    }

    func testOutOfOrderAndGapsBothWays() async throws {
        let peer = try AxolotlPeer()
        let swift = try await TestDevice.make(name: "15551110000", device: 1)
        try await SessionBuilder(store: swift.store, address: peerAddress).process(bundle: try peer.bundle(deviceID: 3))
        let cipher = swift.cipher(with: peerAddress)
        _ = try peer.decrypt(try await cipher.encrypt(text(0, "open")), from: swift.address)
        var random = SeededGenerator(state: 42)

        for round in 0..<3 {
            // Peer → Swift: a burst delivered shuffled, one message held back for later.
            let burst = try (0..<12).map { i in (i, try peer.encrypt(text(round * 100 + i, "peer"), to: swift.address)) }
            var shuffled = burst.shuffled(using: &random)
            let late = shuffled.removeLast()
            for (i, message) in shuffled {
                let plaintext = try await cipher.decrypt(message)
                XCTAssertEqual(plaintext, text(round * 100 + i, "peer"))
            }
            // Swift → peer: reversed, with the first two dropped entirely (a gap).
            var sent: [(Int, CiphertextMessage)] = []
            for i in 0..<10 { sent.append((i, try await cipher.encrypt(text(round * 100 + i, "swift")))) }
            for (i, message) in sent.dropFirst(2).reversed() {
                XCTAssertEqual(try peer.decrypt(message, from: swift.address), text(round * 100 + i, "swift"))
            }
            // The held-back message arrives after the ratchet moved on.
            let plaintext = try await cipher.decrypt(late.1)
            XCTAssertEqual(plaintext, text(round * 100 + late.0, "peer"))
            // And a replay of it is refused as a duplicate.
            await assertSignalError(.duplicateMessage) { try await cipher.decrypt(late.1) }
        }
        // The peer refuses a replay of ours too.
        let once = try await cipher.encrypt(text(1, "once"))
        XCTAssertEqual(try peer.decrypt(once, from: swift.address), text(1, "once"))
        XCTAssertEqual(try peer.attempt(peer.decryptRequest(once, from: swift.address)), "DuplicateMessageException")
        try peer.finish()
    }

    func testLongConversationWithManyRatchetTurns() async throws {
        let peer = try AxolotlPeer()
        let swift = try await TestDevice.make(name: "15551110000", device: 1)
        try peer.build(with: try await swift.bundle(), for: swift.address)
        let cipher = swift.cipher(with: peerAddress)
        var random = SeededGenerator(state: 7)
        var turns = 0
        var count = 0
        var ratchetKeys = Set<Data>()
        while count < 400 {
            turns += 1
            for _ in 0..<Int.random(in: 1...4, using: &random) {
                let message = try peer.encrypt(text(count, "peer"), to: swift.address)
                let plaintext = try await cipher.decrypt(message)
                XCTAssertEqual(plaintext, text(count, "peer"))
                count += 1
            }
            for _ in 0..<Int.random(in: 1...4, using: &random) {
                let message = try await cipher.encrypt(text(count, "swift"))
                if case .whisper(let bytes) = message { ratchetKeys.insert(try SignalMessage(serialized: bytes).ratchetKey.rawRepresentation) }
                XCTAssertEqual(try peer.decrypt(message, from: swift.address), text(count, "swift"))
                count += 1
            }
        }
        XCTAssertGreaterThanOrEqual(turns, 50)
        XCTAssertEqual(ratchetKeys.count, turns, "Swift takes a new ratchet key on every turn")
        try peer.finish()
    }

    func testGroupSenderKeysBothWays() async throws {
        let peer = try AxolotlPeer()
        let swift = try await TestDevice.make(name: "15551110000", device: 1)
        let group = "120363000000000001@g.us"
        let ours = SenderKeyName(groupID: group, sender: swift.address)
        let theirs = SenderKeyName(groupID: group, sender: peerAddress)
        var random = SeededGenerator(state: 3)

        // Swift → peer.
        let skdm = try await GroupSessionBuilder(store: swift.store).create(for: ours)
        try peer.groupProcess(skdm.serialized, from: ours)
        let groupCipher = GroupCipher(store: swift.store, name: ours)
        var sent: [(Int, Data)] = []
        for i in 0..<30 { sent.append((i, try await groupCipher.encrypt(text(i, "swift-group")))) }
        let delivered = Array(sent.shuffled(using: &random).dropLast(3))
        for (i, message) in delivered {
            XCTAssertEqual(try peer.groupDecrypt(message, from: ours), text(i, "swift-group"))
        }
        XCTAssertEqual(try peer.attempt(peer.groupDecryptRequest(delivered[0].1, from: ours)), "DuplicateMessageException")

        // Peer → Swift, in order, shuffled, after a gap, and a replay.
        let theirSKDM = try SenderKeyDistributionMessage(serialized: try peer.groupCreate(theirs))
        try await GroupSessionBuilder(store: swift.store).process(theirSKDM, from: theirs)
        let theirCipher = GroupCipher(store: swift.store, name: theirs)
        var received: [(Int, Data)] = []
        for i in 0..<40 { received.append((i, try peer.groupEncrypt(text(i, "peer-group"), as: theirs))) }
        for (i, message) in received.prefix(5) {
            let plaintext = try await theirCipher.decrypt(message)
            XCTAssertEqual(plaintext, text(i, "peer-group"))
        }
        for (i, message) in received.dropFirst(10).shuffled(using: &random) {
            let plaintext = try await theirCipher.decrypt(message)
            XCTAssertEqual(plaintext, text(i, "peer-group"))
        }
        for (i, message) in received[5..<10] {  // the gap, filled late from kept keys
            let plaintext = try await theirCipher.decrypt(message)
            XCTAssertEqual(plaintext, text(i, "peer-group"))
        }
        await assertSignalError(.duplicateMessage) { try await theirCipher.decrypt(received[7].1) }

        // We rotate our sender key: the peer takes the new one and still reads
        // a message sent under the old key that arrives after the rotation.
        let lateOld = try await groupCipher.encrypt(text(99, "old-key"))
        let rotated = try await GroupSessionBuilder(store: swift.store).rotate(for: ours)
        XCTAssertNotEqual(rotated.keyID, skdm.keyID)
        XCTAssertEqual(rotated.iteration, 0)
        try peer.groupProcess(rotated.serialized, from: ours)
        let underNew = try await groupCipher.encrypt(text(100, "new-key"))
        XCTAssertEqual(try peer.groupDecrypt(underNew, from: ours), text(100, "new-key"))
        XCTAssertEqual(try peer.groupDecrypt(lateOld, from: ours), text(99, "old-key"))
        try peer.finish()
    }

    func testPeerRejectsAlteredSwiftMessages() async throws {
        let peer = try AxolotlPeer()
        let swift = try await TestDevice.make(name: "15551110000", device: 1)
        try peer.build(with: try await swift.bundle(), for: swift.address)
        let cipher = swift.cipher(with: peerAddress)
        _ = try await cipher.decrypt(try peer.encrypt(Data("open".utf8), to: swift.address))
        let message = try await cipher.encrypt(Data("intact".utf8))
        var altered = message.serialized
        altered[altered.count - 1] ^= 0x01  // last MAC byte
        XCTAssertNotNil(try peer.attempt(peer.decryptRequest(.whisper(altered), from: swift.address)))
        XCTAssertEqual(try peer.decrypt(message, from: swift.address), Data("intact".utf8))
        try peer.finish()
    }

    func testPeerReopensSessionAndOldMessagesStillDecrypt() async throws {
        let peer = try AxolotlPeer()
        let swift = try await TestDevice.make(name: "15551110000", device: 1)
        let cipher = swift.cipher(with: peerAddress)
        try peer.build(with: try await swift.bundle(preKeyID: 1), for: swift.address)
        _ = try await cipher.decrypt(try peer.encrypt(Data("first session".utf8), to: swift.address))
        _ = try peer.decrypt(try await cipher.encrypt(Data("ack".utf8)), from: swift.address)
        let late = try peer.encrypt(Data("old session, delivered late".utf8), to: swift.address)

        // The peer opens a second session from another of our bundles.
        try peer.build(with: try await swift.bundle(preKeyID: 2), for: swift.address)
        let reopened = try peer.encrypt(Data("second session".utf8), to: swift.address)
        XCTAssertEqual(reopened.type, "pkmsg")
        let second = try await cipher.decrypt(reopened)
        XCTAssertEqual(second, Data("second session".utf8))
        let archived = await swift.store.loadSession(for: peerAddress)!.archivedStateCount
        XCTAssertEqual(archived, 1)
        let old = try await cipher.decrypt(late)
        XCTAssertEqual(old, Data("old session, delivered late".utf8))
        // Our answers go out on the state that last worked; the peer keeps both too.
        let answer = try await cipher.encrypt(Data("answer".utf8))
        XCTAssertEqual(try peer.decrypt(answer, from: swift.address), Data("answer".utf8))
        try peer.finish()

        // A different python-axolotl device claims the same address: a new identity.
        let impostor = try AxolotlPeer()
        try impostor.build(with: try await swift.bundle(preKeyID: 3), for: swift.address)
        let opening = try impostor.encrypt(Data("trust me".utf8), to: swift.address)
        let before = await swift.snapshot(of: peerAddress)
        do {
            _ = try await cipher.decrypt(opening)
            XCTFail("a new identity for a known address must not be trusted silently")
        } catch let error as SignalError {
            XCTAssertEqual(error.code, .untrustedIdentity)
            XCTAssertEqual(error.identityChange?.newKey, try impostor.identity)
        }
        let after = await swift.snapshot(of: peerAddress)
        XCTAssertEqual(before, after)
        let preKey3 = await swift.store.loadPreKey(id: 3)
        XCTAssertNotNil(preKey3, "a refused opening message does not use up the prekey")
        try impostor.finish()
    }
}
