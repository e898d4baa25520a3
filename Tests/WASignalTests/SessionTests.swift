import Foundation
import WACrypto
import XCTest
@testable import WASignal

/// Swift↔Swift session behaviour: identity changes, archived states, the
/// skipped-key bound, retransmitted opening messages, missing sessions.
final class SessionTests: XCTestCase {
    func testIdentityChangeIsSurfacedNotTrusted() async throws {
        let (alice, bob) = try await openSwiftPair()
        let oldKey = await bob.store.identityKeyPair().publicKey
        // Bob reinstalls: same address, new identity and prekeys.
        let newBob = try await TestDevice.make(name: bob.address.name, device: bob.address.deviceID)
        let newKey = await newBob.store.identityKeyPair().publicKey
        let builder = SessionBuilder(store: alice.store, address: bob.address)
        let before = await alice.snapshot(of: bob.address)
        var change: IdentityChange?
        do {
            try await builder.process(bundle: try await newBob.bundle())
            XCTFail("a changed identity must not be trusted silently")
        } catch let error as SignalError {
            XCTAssertEqual(error.code, .untrustedIdentity)
            change = error.identityChange
        }
        XCTAssertEqual(change, IdentityChange(address: bob.address, previousKey: oldKey, newKey: newKey))
        let after = await alice.snapshot(of: bob.address)
        XCTAssertEqual(before, after)

        // The new Bob opens a session to Alice: refused on receive as well, store unchanged.
        try await SessionBuilder(store: newBob.store, address: alice.address).process(bundle: try await alice.bundle(preKeyID: 2))
        let opening = try await newBob.cipher(with: alice.address).encrypt(Data("it's me".utf8))
        await assertSignalError(.untrustedIdentity) { try await alice.cipher(with: bob.address).decrypt(opening) }
        let afterReceive = await alice.snapshot(of: bob.address)
        XCTAssertEqual(before, afterReceive)

        // Once the caller accepts the change, it goes through.
        await alice.store.acceptIdentity(change!)
        let plaintext = try await alice.cipher(with: bob.address).decrypt(opening)
        XCTAssertEqual(plaintext, Data("it's me".utf8))
        let record = await alice.store.loadSession(for: bob.address)!
        XCTAssertEqual(record.archivedStateCount, 1, "the old session is archived, not lost")
    }

    func testLateMessageDecryptsUnderArchivedSession() async throws {
        let (alice, bob) = try await openSwiftPair()
        let aliceCipher = alice.cipher(with: bob.address)
        let late = try await aliceCipher.encrypt(Data("sent before the new session".utf8))
        // Alice opens a fresh session (say she lost track); Bob receives that first.
        try await SessionBuilder(store: alice.store, address: bob.address).process(bundle: try await bob.bundle(preKeyID: 2))
        let fresh = try await aliceCipher.encrypt(Data("new session".utf8))
        XCTAssertEqual(fresh.type, "pkmsg")
        let bobCipher = bob.cipher(with: alice.address)
        let first = try await bobCipher.decrypt(fresh)
        XCTAssertEqual(first, Data("new session".utf8))
        let baseKey = await bob.store.loadSession(for: alice.address)!.currentBaseKey
        let plaintext = try await bobCipher.decrypt(late)
        XCTAssertEqual(plaintext, Data("sent before the new session".utf8))
        // The archived state that worked became current again; the new one is archived, not lost.
        let record = await bob.store.loadSession(for: alice.address)!
        XCTAssertNotEqual(record.currentBaseKey, baseKey)
        XCTAssertEqual(record.archivedStateCount, 1)
        let reply = try await bobCipher.encrypt(Data("reply".utf8))
        let replyPlaintext = try await aliceCipher.decrypt(reply)
        XCTAssertEqual(replyPlaintext, Data("reply".utf8))
    }

    func testArchiveIsBounded() async throws {
        let alice = try await TestDevice.make(name: "15550001", device: 1)
        let bob = try await TestDevice.make(name: "15550002", device: 2, preKeys: 0)
        let builder = SessionBuilder(store: alice.store, address: bob.address)
        for _ in 0..<(SignalConstants.maxArchivedStates + 5) { try await builder.process(bundle: try await bob.bundle(preKeyID: nil)) }
        let record = await alice.store.loadSession(for: bob.address)!
        XCTAssertEqual(record.archivedStateCount, SignalConstants.maxArchivedStates)
    }

    func testSkippedKeyBound() async throws {
        let (alice, bob) = try await openSwiftPair()
        let aliceCipher = alice.cipher(with: bob.address)
        var messages: [CiphertextMessage] = []
        for i in 0...2001 { messages.append(try await aliceCipher.encrypt(Data("m\(i)".utf8))) }
        let bobCipher = bob.cipher(with: alice.address)
        // 2001 ahead of a new chain: refused, nothing kept.
        let before = await bob.snapshot(of: alice.address)
        await assertSignalError(.tooFarInFuture) { try await bobCipher.decrypt(messages[2001]) }
        let after = await bob.snapshot(of: alice.address)
        XCTAssertEqual(before, after)
        // Exactly 2000 ahead: accepted, keys 0..1999 kept, and each still works once.
        let last = try await bobCipher.decrypt(messages[2000])
        XCTAssertEqual(last, Data("m2000".utf8))
        let record = await bob.store.loadSession(for: alice.address)!
        XCTAssertEqual(record.current!.structure.receiverChains.last!.messageKeys.count, SignalConstants.maxSkippedKeysPerChain)
        for i in [0, 1999, 1000] {
            let plaintext = try await bobCipher.decrypt(messages[i])
            XCTAssertEqual(plaintext, Data("m\(i)".utf8))
        }
        let next = try await bobCipher.decrypt(messages[2001])
        XCTAssertEqual(next, Data("m2001".utf8))
    }

    func testMissingSessionAndPrekeys() async throws {
        let (alice, bob) = try await openSwiftPair()
        let stranger = SignalAddress(name: "15559999", deviceID: 0)
        await assertSignalError(.noSession) { try await alice.cipher(with: stranger).encrypt(Data([1])) }
        let message = try await alice.cipher(with: bob.address).encrypt(Data([1]))
        await assertSignalError(.noSession) { try await bob.cipher(with: stranger).decrypt(message) }

        // A bundle whose signed prekey signature is wrong is refused.
        let carol = try await TestDevice.make(name: "15550003", device: 0)
        var bundle = try await carol.bundle()
        bundle.signedPreKeySignature[5] ^= 1
        await assertSignalError(.invalidSignature) {
            try await SessionBuilder(store: alice.store, address: carol.address).process(bundle: bundle)
        }
        // An opening message naming a prekey already used up.
        let dave = try await TestDevice.make(name: "15550004", device: 0)
        let daveBundle = try await carol.bundle(preKeyID: 1)
        try await SessionBuilder(store: dave.store, address: carol.address).process(bundle: daveBundle)
        await carol.store.removePreKey(id: 1)
        let opening = try await dave.cipher(with: carol.address).encrypt(Data([2]))
        await assertSignalError(.invalidKeyID) { try await carol.cipher(with: dave.address).decrypt(opening) }
    }

    func testInputSlicesAndWhatsAppPaddingEndToEnd() async throws {
        let (alice, bob) = try await openSwiftPair()
        let body = Data("a serialised Message protobuf".utf8)
        let message = try await alice.cipher(with: bob.address).encrypt(MessagePadding.pad(body))
        // Bytes cut out of a bigger buffer (a node's content) keep their offsets in Swift.
        let buffer = Data([0xAA, 0xBB, 0xCC]) + message.serialized
        let slice = buffer[3...]
        XCTAssertEqual(slice.startIndex, 3)
        let padded = try await bob.cipher(with: alice.address).decrypt(signalMessage: slice)
        XCTAssertEqual(try MessagePadding.unpad(padded), body)

        let name = SenderKeyName(groupID: "g", sender: alice.address)
        let skdm = try await GroupSessionBuilder(store: alice.store).create(for: name)
        let skdmBuffer = Data([1, 2]) + skdm.serialized
        try await GroupSessionBuilder(store: bob.store).process(try SenderKeyDistributionMessage(serialized: skdmBuffer[2...]), from: name)
        let group = Data([9]) + (try await GroupCipher(store: alice.store, name: name).encrypt(MessagePadding.pad(body)))
        let groupPadded = try await GroupCipher(store: bob.store, name: name).decrypt(group[1...])
        XCTAssertEqual(try MessagePadding.unpad(groupPadded), body)
    }

    func testPaddingRoundTripAndValidation() throws {
        for n: UInt8 in 1...15 {
            let padded = MessagePadding.pad(Data("body".utf8), count: n)
            XCTAssertEqual(padded.count, 4 + Int(n))
            XCTAssertEqual(padded.suffix(Int(n)), Data(repeating: n, count: Int(n)))
            XCTAssertEqual(try MessagePadding.unpad(padded), Data("body".utf8))
        }
        for _ in 0..<100 {
            let padded = MessagePadding.pad(Data([9, 9]))
            XCTAssertTrue((3...17).contains(padded.count))
            XCTAssertEqual(try MessagePadding.unpad(padded), Data([9, 9]))
        }
        for bad in [Data(), Data([1, 2, 0]), Data([1, 3, 2]), Data([5, 5, 5]), Data([1, 2, 3, 3])] {
            XCTAssertThrowsError(try MessagePadding.unpad(bad)) { XCTAssertEqual(($0 as? SignalError)?.code, .invalidMessage) }
        }
    }
}
