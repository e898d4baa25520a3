import Foundation
import XCTest
@testable import WASignal

/// Swift↔Swift sender keys: rotation, the bound on kept states, repeated
/// distribution messages.
final class GroupTests: XCTestCase {
    func testRotationKeepsOldKeysForLateMessagesWithinBound() async throws {
        let alice = try await TestDevice.make(name: "15550001", device: 1)
        let bob = try await TestDevice.make(name: "15550002", device: 2)
        let name = SenderKeyName(groupID: "120363000000000003@g.us", sender: alice.address)
        let sender = GroupCipher(store: alice.store, name: name)
        let receiver = GroupCipher(store: bob.store, name: name)
        let builder = GroupSessionBuilder(store: alice.store)

        var late: [(Int, Data)] = []
        var distribution = try await builder.create(for: name)
        for generation in 0..<7 {
            try await GroupSessionBuilder(store: bob.store).process(distribution, from: name)
            let now = try await sender.encrypt(Data("gen \(generation)".utf8))
            late.append((generation, try await sender.encrypt(Data("late \(generation)".utf8))))
            let plaintext = try await receiver.decrypt(now)
            XCTAssertEqual(plaintext, Data("gen \(generation)".utf8))
            distribution = try await builder.rotate(for: name)
        }
        let kept = await bob.store.loadSenderKey(for: name)!
        XCTAssertEqual(kept.states.count, SignalConstants.maxSenderKeyStates)
        // The last five generations' late messages decrypt; the two oldest keys are gone.
        for (generation, message) in late {
            if generation >= 2 {
                let plaintext = try await receiver.decrypt(message)
                XCTAssertEqual(plaintext, Data("late \(generation)".utf8))
            } else {
                await assertSignalError(.noSenderKey) { try await receiver.decrypt(message) }
            }
        }
    }

    func testRepeatedDistributionDoesNotRewindTheChain() async throws {
        let alice = try await TestDevice.make(name: "15550001", device: 1)
        let bob = try await TestDevice.make(name: "15550002", device: 2)
        let name = SenderKeyName(groupID: "g", sender: alice.address)
        let distribution = try await GroupSessionBuilder(store: alice.store).create(for: name)
        try await GroupSessionBuilder(store: bob.store).process(distribution, from: name)
        let message = try await GroupCipher(store: alice.store, name: name).encrypt(Data("once".utf8))
        let plaintext = try await GroupCipher(store: bob.store, name: name).decrypt(message)
        XCTAssertEqual(plaintext, Data("once".utf8))
        // The same distribution message again (a retransmission) must not make the replay readable.
        try await GroupSessionBuilder(store: bob.store).process(distribution, from: name)
        await assertSignalError(.duplicateMessage) { try await GroupCipher(store: bob.store, name: name).decrypt(message) }
        // Our own cipher refuses to encrypt with a key we only received.
        await assertSignalError(.noSenderKey) { try await GroupCipher(store: bob.store, name: name).encrypt(Data([1])) }
    }
}
