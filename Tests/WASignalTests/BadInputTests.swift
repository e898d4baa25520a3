import Foundation
import WACrypto
import WAProto
import XCTest
@testable import WASignal

/// Truncated, altered, replayed and wrong-version input: each gives a typed
/// `SignalError` and leaves the store byte-for-byte as it was; the intact
/// message still decrypts afterwards (nothing was consumed).
final class BadInputTests: XCTestCase {
    /// Runs `decrypt` on `bytes` and checks it fails with a SignalError and changes nothing.
    private func assertRejected(
        _ bytes: Data, by device: TestDevice, from peer: SignalAddress, group: SenderKeyName? = nil,
        _ what: String, file: StaticString = #filePath, line: UInt = #line,
        decrypt: (Data) async throws -> Data
    ) async -> SignalError.Code? {
        let before = await device.snapshot(of: peer, group: group)
        var code: SignalError.Code?
        do {
            _ = try await decrypt(bytes)
            XCTFail("\(what): accepted", file: file, line: line)
        } catch let error as SignalError {
            code = error.code
        } catch {
            XCTFail("\(what): untyped error \(error)", file: file, line: line)
        }
        let after = await device.snapshot(of: peer, group: group)
        XCTAssertEqual(before, after, "\(what): store changed", file: file, line: line)
        return code
    }

    func testAlteredTruncatedReplayedAndWrongVersionSignalMessages() async throws {
        let (alice, bob) = try await openSwiftPair()
        let aliceCipher = alice.cipher(with: bob.address)
        let bobCipher = bob.cipher(with: alice.address)
        // Message 0 of a new chain (Bob must do a DH ratchet step to read it),
        // and message 3 of it (Bob must also keep skipped keys 1 and 2).
        var messages: [Data] = []
        for i in 0..<4 { messages.append(try await aliceCipher.encrypt(Data("sample \(i)".utf8)).serialized) }
        var codes: [String: Int] = [:]

        for sample in [messages[0], messages[3]] {
            for index in sample.indices {
                for mask: UInt8 in [0x01, 0x80] {
                    var altered = sample
                    altered[index] ^= mask
                    let code = await assertRejected(altered, by: bob, from: alice.address, "flip \(mask) at \(index)") {
                        try await bobCipher.decrypt(signalMessage: $0)
                    }
                    codes[code?.rawValue ?? "none", default: 0] += 1
                }
            }
            for length in 0..<sample.count {
                let code = await assertRejected(sample.prefix(length), by: bob, from: alice.address, "truncated to \(length)") {
                    try await bobCipher.decrypt(signalMessage: $0)
                }
                codes[code?.rawValue ?? "none", default: 0] += 1
            }
            for first: UInt8 in [0x23, 0x13, 0x43, 0xF3] {
                var wrong = sample
                wrong[0] = first
                let code = await assertRejected(wrong, by: bob, from: alice.address, "version byte \(first)") {
                    try await bobCipher.decrypt(signalMessage: $0)
                }
                XCTAssertEqual(code, .invalidVersion)
            }
        }
        XCTAssertGreaterThan(codes["signal.invalid_mac"] ?? 0, 0, "\(codes)")
        XCTAssertGreaterThan(codes["signal.invalid_message"] ?? 0, 0, "\(codes)")

        // The intact messages still decrypt, in any order, exactly once.
        for i in [3, 0, 2, 1] {
            let plaintext = try await bobCipher.decrypt(signalMessage: messages[i])
            XCTAssertEqual(plaintext, Data("sample \(i)".utf8))
        }
        for sample in messages {
            let code = await assertRejected(sample, by: bob, from: alice.address, "replay") { try await bobCipher.decrypt(signalMessage: $0) }
            XCTAssertEqual(code, .duplicateMessage)
        }
    }

    func testAlteredPreKeyMessageNeverCommits() async throws {
        let alice = try await TestDevice.make(name: "15550001", device: 1)
        let bob = try await TestDevice.make(name: "15550002", device: 2)
        try await SessionBuilder(store: alice.store, address: bob.address).process(bundle: try await bob.bundle(preKeyID: 3))
        let sample = try await alice.cipher(with: bob.address).encrypt(Data("opening".utf8)).serialized
        let original = try SignalWire_PreKeySignalMessage(serializedBytes: sample.dropFirst())
        var rejected = 0, accepted = 0

        for index in sample.indices {
            var altered = sample
            altered[index] ^= 0x01
            // A fresh copy of Bob each time: a flip that still decrypts commits to its copy only.
            let copy = try await bob.restored(peers: [alice.address])
            let before = await copy.snapshot(of: alice.address)
            do {
                let plaintext = try await copy.cipher(with: alice.address).decrypt(preKeySignalMessage: altered)
                // libsignal v3 authenticates everything but the registration id (and
                // unknown fields): a flip there may pass, but must not change anything
                // that is authenticated.
                XCTAssertEqual(plaintext, Data("opening".utf8))
                let parsed = try SignalWire_PreKeySignalMessage(serializedBytes: altered.dropFirst())
                XCTAssertEqual(parsed.baseKey, original.baseKey, "flip at \(index)")
                XCTAssertEqual(parsed.identityKey, original.identityKey, "flip at \(index)")
                XCTAssertEqual(parsed.message, original.message, "flip at \(index)")
                XCTAssertEqual(parsed.preKeyID, original.preKeyID, "flip at \(index)")
                XCTAssertEqual(parsed.signedPreKeyID, original.signedPreKeyID, "flip at \(index)")
                accepted += 1
            } catch is SignalError {
                let after = await copy.snapshot(of: alice.address)
                XCTAssertEqual(before, after, "flip at \(index): store changed")
                rejected += 1
            }
        }
        XCTAssertGreaterThan(rejected, sample.count - 4, "only the registration id may be altered harmlessly")
        // Truncations and wrong versions against Bob himself.
        for length in 0..<sample.count {
            _ = await assertRejected(sample.prefix(length), by: bob, from: alice.address, "truncated to \(length)") {
                try await bob.cipher(with: alice.address).decrypt(preKeySignalMessage: $0)
            }
        }
        var wrong = sample
        wrong[0] = 0x23
        let code = await assertRejected(wrong, by: bob, from: alice.address, "version 2") {
            try await bob.cipher(with: alice.address).decrypt(preKeySignalMessage: $0)
        }
        XCTAssertEqual(code, .invalidVersion)

        // Untouched, it opens the session and uses up one-time prekey 3.
        let plaintext = try await bob.cipher(with: alice.address).decrypt(preKeySignalMessage: sample)
        XCTAssertEqual(plaintext, Data("opening".utf8))
        let preKey3 = await bob.store.loadPreKey(id: 3)
        XCTAssertNil(preKey3)
        // A retransmission of the same opening message is a duplicate, not a second session.
        let replay = await assertRejected(sample, by: bob, from: alice.address, "replayed pkmsg") {
            try await bob.cipher(with: alice.address).decrypt(preKeySignalMessage: $0)
        }
        XCTAssertEqual(replay, .duplicateMessage)
    }

    func testAlteredTruncatedAndReplayedGroupMessages() async throws {
        let alice = try await TestDevice.make(name: "15550001", device: 1)
        let bob = try await TestDevice.make(name: "15550002", device: 2)
        let name = SenderKeyName(groupID: "120363000000000002@g.us", sender: alice.address)
        let skdm = try await GroupSessionBuilder(store: alice.store).create(for: name)
        try await GroupSessionBuilder(store: bob.store).process(try SenderKeyDistributionMessage(serialized: skdm.serialized), from: name)
        let sender = GroupCipher(store: alice.store, name: name)
        let receiver = GroupCipher(store: bob.store, name: name)
        var messages: [Data] = []
        for i in 0..<3 { messages.append(try await sender.encrypt(Data("group \(i)".utf8))) }
        let sample = messages[2]  // iteration 2: a decrypt would keep keys 0 and 1
        var codes = Set<String>()
        for index in sample.indices {
            var altered = sample
            altered[index] ^= 0x01
            let code = await assertRejected(altered, by: bob, from: alice.address, group: name, "flip at \(index)") {
                try await receiver.decrypt($0)
            }
            codes.insert(code?.rawValue ?? "none")
        }
        for length in 0..<sample.count {
            _ = await assertRejected(sample.prefix(length), by: bob, from: alice.address, group: name, "truncated to \(length)") {
                try await receiver.decrypt($0)
            }
        }
        var wrong = sample
        wrong[0] = 0x23
        let version = await assertRejected(wrong, by: bob, from: alice.address, group: name, "version 2") { try await receiver.decrypt($0) }
        XCTAssertEqual(version, .invalidVersion)
        XCTAssertTrue(codes.contains("signal.invalid_signature"), "\(codes)")

        for i in [2, 0, 1] {
            let plaintext = try await receiver.decrypt(messages[i])
            XCTAssertEqual(plaintext, Data("group \(i)".utf8))
        }
        let replay = await assertRejected(messages[1], by: bob, from: alice.address, group: name, "replay") { try await receiver.decrypt($0) }
        XCTAssertEqual(replay, .duplicateMessage)
        // A message from a sender we have no key for.
        let stranger = GroupCipher(store: bob.store, name: SenderKeyName(groupID: name.groupID, sender: SignalAddress(name: "x", deviceID: 0)))
        await assertSignalError(.noSenderKey) { try await stranger.decrypt(messages[0]) }
    }
}
