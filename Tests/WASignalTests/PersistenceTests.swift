import Foundation
import WACrypto
import XCTest
@testable import WASignal

/// Records serialise to libsignal's storage protobufs and back, and a
/// conversation carries on across a restore in the middle of it.
final class PersistenceTests: XCTestCase {
    private let peerAddress = SignalAddress(name: "15557770000", deviceID: 3)

    func testConversationWithPeerSurvivesRestoreMidway() async throws {
        let peer = try AxolotlPeer()
        var swift = try await TestDevice.make(name: "15551110000", device: 1)
        try peer.build(with: try await swift.bundle(preKeyID: 2), for: swift.address)
        let first = try peer.encrypt(Data("one".utf8), to: swift.address)
        let opened = try await swift.cipher(with: peerAddress).decrypt(first)
        XCTAssertEqual(opened, Data("one".utf8))
        // Hold back one message so the restored record must carry a kept key.
        let held = try peer.encrypt(Data("held".utf8), to: swift.address)
        let third = try peer.encrypt(Data("three".utf8), to: swift.address)
        let thirdPlaintext = try await swift.cipher(with: peerAddress).decrypt(third)
        XCTAssertEqual(thirdPlaintext, Data("three".utf8))
        let reply = try await swift.cipher(with: peerAddress).encrypt(Data("reply".utf8))
        XCTAssertEqual(try peer.decrypt(reply, from: swift.address), Data("reply".utf8))

        let bytesBefore = try await swift.sessionBytes(with: peerAddress)
        swift = try await swift.restored(peers: [peerAddress])
        let bytesAfter = try await swift.sessionBytes(with: peerAddress)
        XCTAssertEqual(bytesBefore, bytesAfter, "serialise → deserialise → serialise is stable")

        let heldPlaintext = try await swift.cipher(with: peerAddress).decrypt(held)
        XCTAssertEqual(heldPlaintext, Data("held".utf8))
        for i in 0..<6 {
            let out = try await swift.cipher(with: peerAddress).encrypt(Data("after \(i)".utf8))
            XCTAssertEqual(try peer.decrypt(out, from: swift.address), Data("after \(i)".utf8))
            let back = try peer.encrypt(Data("back \(i)".utf8), to: swift.address)
            let plaintext = try await swift.cipher(with: peerAddress).decrypt(back)
            XCTAssertEqual(plaintext, Data("back \(i)".utf8))
        }
        try peer.finish()
    }

    func testSwiftPairSurvivesRestoreOfBothSides() async throws {
        var (alice, bob) = try await openSwiftPair()
        var pending: [CiphertextMessage] = []
        for i in 0..<3 { pending.append(try await alice.cipher(with: bob.address).encrypt(Data("p\(i)".utf8))) }
        alice = try await alice.restored(peers: [bob.address])
        bob = try await bob.restored(peers: [alice.address])
        for i in [2, 0, 1] {
            let plaintext = try await bob.cipher(with: alice.address).decrypt(pending[i])
            XCTAssertEqual(plaintext, Data("p\(i)".utf8))
        }
        let answer = try await bob.cipher(with: alice.address).encrypt(Data("ok".utf8))
        let plaintext = try await alice.cipher(with: bob.address).decrypt(answer)
        XCTAssertEqual(plaintext, Data("ok".utf8))
    }

    func testRecordsRoundTripAndRejectGarbage() async throws {
        let identity = IdentityKeyPair.generate()
        let identityBack = try IdentityKeyPair(serialized: identity.serialized())
        XCTAssertEqual(identityBack.privateKey.rawRepresentation, identity.privateKey.rawRepresentation)
        XCTAssertEqual(identityBack.publicKey, identity.publicKey)
        XCTAssertFalse("\(identity)".contains(identity.privateKey.rawRepresentation.hex), "no private key in descriptions")

        let preKey = KeyHelper.generatePreKeys(start: 0xFF_FFFE, count: 3)
        XCTAssertEqual(preKey.map(\.id), [0xFF_FFFE, 1, 2], "prekey ids wrap below 2^24 and skip zero")
        let preKeyBack = try PreKeyRecord(serialized: preKey[0].serialized())
        XCTAssertEqual(preKeyBack.serialized(), preKey[0].serialized())

        let signed = try SignedPreKeyRecord.generate(id: 9, identity: identity, timestamp: 1_700_000_000_000)
        let signedBack = try SignedPreKeyRecord(serialized: signed.serialized())
        XCTAssertEqual(signedBack.serialized(), signed.serialized())
        XCTAssertTrue(XEdDSA.verify(signedBack.signature, for: signedBack.keyPair.publicKey.signalSerialized, publicKey: identity.publicKey))

        // Sender key record mid-chain, with kept keys.
        let alice = try await TestDevice.make(name: "a", device: 1)
        let bob = try await TestDevice.make(name: "b", device: 1)
        let name = SenderKeyName(groupID: "g", sender: alice.address)
        try await GroupSessionBuilder(store: bob.store).process(try await GroupSessionBuilder(store: alice.store).create(for: name), from: name)
        var sent: [Data] = []
        for i in 0..<4 { sent.append(try await GroupCipher(store: alice.store, name: name).encrypt(Data([UInt8(i)]))) }
        _ = try await GroupCipher(store: bob.store, name: name).decrypt(sent[3])
        let record = await bob.store.loadSenderKey(for: name)!
        let restored = try SenderKeyRecord(serialized: record.serialized())
        XCTAssertEqual(restored, record)
        let copy = InMemorySignalStore()
        await copy.storeSenderKey(restored, for: name)
        let late = try await GroupCipher(store: copy, name: name).decrypt(sent[1])
        XCTAssertEqual(late, Data([1]))

        for garbage in [Data([0xFF]), Data([0x0A, 0x05, 0x01])] {
            XCTAssertThrowsError(try SessionRecord(serialized: garbage)) { XCTAssertEqual(($0 as? SignalError)?.code, .corruptRecord) }
            XCTAssertThrowsError(try SenderKeyRecord(serialized: garbage)) { XCTAssertEqual(($0 as? SignalError)?.code, .corruptRecord) }
            XCTAssertThrowsError(try PreKeyRecord(serialized: garbage)) { XCTAssertEqual(($0 as? SignalError)?.code, .corruptRecord) }
        }
    }

    func testNothingPrintsSecretKeyBytes() async throws {
        let (alice, bob) = try await openSwiftPair()
        let record = await alice.store.loadSession(for: bob.address)!
        let state = record.current!
        let secrets = [
            state.structure.rootKey, state.structure.senderChain.senderRatchetKeyPrivate,
            state.structure.senderChain.chainKey.key,
        ] + state.structure.receiverChains.map(\.chainKey.key)
        let name = SenderKeyName(groupID: "g", sender: alice.address)
        let skdm = try await GroupSessionBuilder(store: alice.store).create(for: name)
        let senderKey = await alice.store.loadSenderKey(for: name)!
        let preKey = KeyHelper.generatePreKeys(start: 1, count: 1)[0]
        let identity = await alice.store.identityKeyPair()
        let signed = try SignedPreKeyRecord.generate(id: 1, identity: identity)
        let allSecrets = secrets + [
            skdm.chainKey, senderKey.states[0].structure.senderSigningKey.`private`, preKey.keyPair.privateKey.rawRepresentation,
            identity.privateKey.rawRepresentation, signed.keyPair.privateKey.rawRepresentation,
        ]
        let values: [Any] = [record, state, senderKey, senderKey.states[0], skdm, preKey, identity, signed, state.senderChainKey,
                             state.senderChainKey.messageKeys, state.rootKey]
        for value in values {
            var dumped = ""
            dump(value, to: &dumped)
            // A redacted value dumps as one line: no children, so no fields to leak.
            XCTAssertEqual(dumped.split(separator: "\n").count, 1, "\(type(of: value)) dumps its fields: \(dumped.prefix(120))")
            let texts = [String(describing: value), String(reflecting: value), dumped]
            for text in texts {
                for secret in allSecrets where !secret.isEmpty {
                    XCTAssertFalse(text.contains(secret.hex), "\(type(of: value)) prints a secret: \(text.prefix(80))")
                    // Data's own description is "N bytes"; also rule out byte lists.
                    XCTAssertFalse(text.contains(secret.prefix(4).map { String($0) }.joined(separator: ", ")), "\(type(of: value))")
                }
            }
        }
    }
}
