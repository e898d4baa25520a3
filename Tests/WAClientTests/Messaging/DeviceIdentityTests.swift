import Foundation
import WABinary
import WACrypto
import WAClient
import WAProto
import WASignal
import XCTest

/// The `<device-identity>` a companion sends with its pkmsg is verified before
/// its session is accepted: account signature, device signature, and the
/// account key against the primary device's identity when we know it.
final class DeviceIdentityTests: XCTestCase {
    var server: FakeServer!
    var bob0: Party!
    let alice = "15550001111"

    override func setUp() async throws {
        server = FakeServer()
        bob0 = try await .make("15550002222", device: 0)
        try await server.register(bob0)
        // Bob has met Alice's phone: he knows her primary identity.
        await bob0.store.saveIdentity(
            Party.accountKey(alice).publicKey, for: SignalAddress(jid: JID(user: alice, device: 0, server: JID.userServer)))
    }

    private func refused(_ outcome: ReceiveOutcome, file: StaticString = #filePath, line: UInt = #line) -> WAClientError? {
        guard case .undecryptable(let failed, let retry) = outcome else {
            XCTFail("expected a refusal, got \(outcome)", file: file, line: line)
            return nil
        }
        XCTAssertNil(retry, "no retry receipt for a forged identity", file: file, line: line)
        return failed.error
    }

    func testAGenuineCompanionIsAccepted() async throws {
        let alice1 = try await Party.make(alice, device: 1)
        try await server.register(alice1)
        let (_, delivered) = try await sendDirect(alice1, to: bob0.user, text("hi"), id: "3EB0D1", server: server)
        var receiver = bob0.receiver()
        let (message, _) = try expectMessage(try await receiver.receive(delivered[bob0.device]!))
        XCTAssertEqual(message.content, .text("hi", context: nil))
    }

    func testACompanionSignedByAnotherAccountIsRefused() async throws {
        // Self-made account key: valid signatures, but not Alice's phone.
        let mallory = try await Party.make(alice, device: 7, account: .generate())
        try await server.register(mallory)
        let (_, delivered) = try await sendDirect(mallory, to: bob0.user, text("it's me"), id: "3EB0D2", server: server)
        var receiver = bob0.receiver()
        let error = refused(try await receiver.receive(delivered[bob0.device]!))
        XCTAssertEqual(error?.code, .deviceIdentityInvalid)
        let session = await bob0.store.loadSession(for: SignalAddress(jid: mallory.device))
        XCTAssertNil(session, "no session opened with the forger")
    }

    func testAReplayedIdentityOfAnotherDeviceIsRefused() async throws {
        let alice1 = try await Party.make(alice, device: 1)
        let impostor = try await Party.make(alice, device: 1)
        // The impostor has its own keys but presents Alice's genuine ADV identity.
        let replaying = Party(
            device: impostor.device, store: impostor.store, signedPreKey: impostor.signedPreKey, preKeys: impostor.preKeys,
            deviceIdentity: alice1.deviceIdentity)
        try await server.register(replaying)
        let (_, delivered) = try await sendDirect(replaying, to: bob0.user, text("replay"), id: "3EB0D3", server: server)
        var receiver = bob0.receiver()
        let error = refused(try await receiver.receive(delivered[bob0.device]!))
        XCTAssertEqual(error?.code, .deviceIdentityInvalid)
        XCTAssertTrue(error?.message.contains("account signature") == true, "\(String(describing: error))")
    }

    func testAnUnparsableIdentityIsRefused() async throws {
        let alice1 = try await Party.make(alice, device: 1)
        let broken = Party(
            device: alice1.device, store: alice1.store, signedPreKey: alice1.signedPreKey, preKeys: alice1.preKeys,
            deviceIdentity: Data([0xFF, 0xFF, 0x01]))
        try await server.register(broken)
        let (_, delivered) = try await sendDirect(broken, to: bob0.user, text("x"), id: "3EB0D4", server: server)
        var receiver = bob0.receiver()
        let outcome = try await receiver.receive(delivered[bob0.device]!)
        XCTAssertEqual(refused(outcome)?.code, .deviceIdentityInvalid)
    }
}
