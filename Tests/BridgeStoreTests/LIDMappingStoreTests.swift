import Foundation
import WABinary
import WAClient
import WASignal
import XCTest
@testable import BridgeStore

/// The PN↔LID table of `session.sqlite` and the PN → LID move of Signal state, on real files.
final class LIDMappingStoreTests: XCTestCase {
    func testMappingsRoundTripAcrossAReopenAndANewerMappingReplaces() async throws {
        let dir = try makeTemporaryDirectory(self)
        var store = try openStore(dir)
        let id = try DeviceID("lidmap")
        try await store.createDevice(id: id)
        var keys = try await store.device(id).keys
        let alicePN = JID(user: "15550001111", server: JID.userServer)
        let aliceLID = JID(user: "100000000000001", server: JID.lidServer)
        let bobPN = JID(user: "15550002222", server: JID.userServer)
        try await keys.storeLIDMappings([try LIDMapping(aliceLID, alicePN), try LIDMapping(bobPN, JID(user: "100000000000002", server: JID.lidServer))])

        store.closeAll()
        store = try openStore(dir)
        keys = try await store.device(id).keys
        let lid = try await keys.lid(forPN: JID(user: "15550001111", device: 3, server: JID.userServer))
        XCTAssertEqual(lid, aliceLID, "looked up by user, device dropped")
        let pn = try await keys.pn(forLID: aliceLID)
        XCTAssertEqual(pn, alicePN)
        let unknown = try await keys.lid(forPN: JID(user: "15559999999", server: JID.userServer))
        XCTAssertNil(unknown)

        // Bob's number moves to a new LID: the old LID no longer names him.
        let newBobLID = JID(user: "100000000000009", server: JID.lidServer)
        try await keys.storeLIDMappings([try LIDMapping(newBobLID, bobPN)])
        let bobNow = try await keys.lid(forPN: bobPN)
        XCTAssertEqual(bobNow, newBobLID)
        let oldBob = try await keys.pn(forLID: JID(user: "100000000000002", server: JID.lidServer))
        XCTAssertNil(oldBob)
        let count = try await keys.lidMappingCount()
        XCTAssertEqual(count, 2)

        // Logout wipes the table with the keys.
        try await keys.wipe()
        let afterWipe = try await keys.lidMappingCount()
        XCTAssertEqual(afterWipe, 0)
    }

    func testAMappingOfTwoAddressesOfOneKindIsATypedError() {
        let pn = JID(user: "15550001111", server: JID.userServer)
        for (a, b) in [(pn, pn), (JID(user: "1", server: JID.lidServer), JID(user: "2", server: JID.lidServer)),
                       (JID(user: "", server: JID.lidServer), pn), (JID(user: "12ab", server: JID.lidServer), pn),
                       (JID(user: "1", server: JID.groupServer), pn)] {
            XCTAssertThrowsError(try LIDMapping(a, b)) { XCTAssertEqual(($0 as? WAClientError)?.code, .stanzaMalformed) }
        }
    }

    /// Alice talks to Bob under his number, learns his LID, moves her state there (sealed
    /// blobs resealed under the new address), and Bob's next plain `msg` decrypts under the LID.
    func testPNToLIDMoveKeepsTheRatchetOnAnEncryptedStore() async throws {
        let dir = try makeTemporaryDirectory(self)
        let store = try openStore(dir, masterKey: MasterKey.generate())
        let alice = try await SignalDevice.make(store, id: "alice", user: "15550001111")
        let bob = try await SignalDevice.make(store, id: "bob", user: "15550002222")
        let bobLID = SignalAddress(name: "100000000000002_1", deviceID: 0)
        try await SessionBuilder(store: alice.storage.keys, address: bob.address).process(bundle: try await bob.bundle(preKeyID: 1))
        let hello = try await alice.send("hello", to: bob)
        let got = try await bob.receive(hello, from: alice)
        XCTAssertEqual(got, "hello")
        let reply = try await bob.send("first reply", to: alice)
        let first = try await alice.receive(reply, from: bob)
        XCTAssertEqual(first, "first reply")
        let identityBefore = try await alice.storage.keys.identity(for: bob.address)

        let moved = try await alice.storage.keys.migrateAddresses(fromName: bob.address.name, toName: bobLID.name)
        XCTAssertEqual(moved, 2, "the session and the identity")
        let pnSession = try await alice.storage.keys.hasSession(for: bob.address)
        XCTAssertFalse(pnSession)
        let identityAfter = try await alice.storage.keys.identity(for: bobLID)
        XCTAssertEqual(identityAfter, identityBefore)

        let second = try await bob.send("second reply", to: alice)
        guard case .whisper = second else { return XCTFail("a plain msg on the old ratchet, not a pkmsg") }
        let plain = try await SessionCipher(store: alice.storage.keys, address: bobLID).decrypt(second)
        XCTAssertEqual(String(decoding: plain, as: UTF8.self), "second reply")
        // Moving again finds nothing; a LID entry that already exists is kept.
        let again = try await alice.storage.keys.migrateAddresses(fromName: bob.address.name, toName: bobLID.name)
        XCTAssertEqual(again, 0)
    }

    /// A group send asks for every member at once: 1,200 numbers (three chunks of the query).
    func testManyNumbersAreLookedUpAtOnce() async throws {
        let dir = try makeTemporaryDirectory(self)
        let store = try openStore(dir)
        let id = try DeviceID("lidbatch")
        try await store.createDevice(id: id)
        let keys = try await store.device(id).keys
        let numbers = (0..<1_200).map { JID(user: String(15_550_000_000 + $0), server: JID.userServer) }
        let mapped = numbers.enumerated().filter { $0.offset % 3 != 0 }
        try await keys.storeLIDMappings(try mapped.map { try LIDMapping(JID(user: String(100_000_000_000_000 + $0.offset), server: JID.lidServer), $0.element) })
        let found = try await keys.lids(forPNs: numbers + [JID(user: numbers[1].user, device: 7, server: JID.userServer)])
        XCTAssertEqual(found.count, mapped.count)
        XCTAssertEqual(found[numbers[1].user], JID(user: "100000000000001", server: JID.lidServer))
        XCTAssertNil(found[numbers[0].user])
        XCTAssertEqual(found[numbers[1_199].user], JID(user: "100000000001199", server: JID.lidServer))
    }
}
