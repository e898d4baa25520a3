import Foundation
import WACrypto
import XCTest
@testable import WASignal

/// A Swift-side device for tests: an in-memory store with a signed prekey
/// (id 1) and one-time prekeys 1...preKeys.
struct TestDevice: Sendable {
    let store: InMemorySignalStore
    let address: SignalAddress
    var preKeyCount = 10

    static func make(name: String, device: UInt32 = 1, preKeys: Int = 10) async throws -> TestDevice {
        let store = InMemorySignalStore()
        let identity = await store.identityKeyPair()
        await store.storeSignedPreKey(try SignedPreKeyRecord.generate(id: 1, identity: identity))
        for record in KeyHelper.generatePreKeys(start: 1, count: preKeys) { await store.storePreKey(record) }
        return TestDevice(store: store, address: SignalAddress(name: name, deviceID: device), preKeyCount: preKeys)
    }

    /// A new store rebuilt from this one's serialised records (identity,
    /// prekeys, sessions and identities of `peers`): what a restart from a
    /// database would see.
    func restored(peers: [SignalAddress]) async throws -> TestDevice {
        let identity = try IdentityKeyPair(serialized: await store.identityKeyPair().serialized())
        let copy = InMemorySignalStore(identity: identity, registrationID: await store.localRegistrationID())
        if let signed = await store.loadSignedPreKey(id: 1) { await copy.storeSignedPreKey(try SignedPreKeyRecord(serialized: signed.serialized())) }
        for id in 1...UInt32(preKeyCount) {
            if let record = await store.loadPreKey(id: id) { await copy.storePreKey(try PreKeyRecord(serialized: record.serialized())) }
        }
        for peer in peers {
            if let record = await store.loadSession(for: peer) { await copy.storeSession(try SessionRecord(serialized: record.serialized()), for: peer) }
            if let key = await store.identity(for: peer) { await copy.saveIdentity(key, for: peer) }
        }
        return TestDevice(store: copy, address: address, preKeyCount: preKeyCount)
    }

    /// Everything a decrypt from `peer` could change, as bytes.
    func snapshot(of peer: SignalAddress, group: SenderKeyName? = nil) async -> StoreSnapshot {
        var preKeys: [UInt32] = []
        for id in 1...UInt32(preKeyCount) where await store.loadPreKey(id: id) != nil { preKeys.append(id) }
        var senderKey: Data?
        if let group { senderKey = await store.loadSenderKey(for: group)?.serialized() }
        return StoreSnapshot(
            session: await store.loadSession(for: peer)?.serialized(),
            identity: await store.identity(for: peer)?.rawRepresentation, preKeys: preKeys, senderKey: senderKey)
    }

    /// Our bundle offering one-time prekey `preKeyID` (nil: none).
    func bundle(preKeyID: UInt32? = 1) async throws -> PreKeyBundle {
        let signed = await store.loadSignedPreKey(id: 1)!
        let preKey = preKeyID == nil ? nil : await store.loadPreKey(id: preKeyID!)
        return PreKeyBundle(
            registrationID: await store.localRegistrationID(), deviceID: address.deviceID, preKeyID: preKey?.id,
            preKey: preKey?.keyPair.publicKey, signedPreKeyID: signed.id, signedPreKey: signed.keyPair.publicKey,
            signedPreKeySignature: signed.signature, identityKey: await store.identityKeyPair().publicKey)
    }

    func cipher(with peer: SignalAddress) -> SessionCipher { SessionCipher(store: store, address: peer) }

    func sessionBytes(with peer: SignalAddress) async throws -> Data? {
        await store.loadSession(for: peer)?.serialized()
    }
}

struct StoreSnapshot: Equatable {
    var session: Data?
    var identity: Data?
    var preKeys: [UInt32]
    var senderKey: Data?
}

/// A Swift↔Swift pair with a session open both ways (one exchange done).
func openSwiftPair() async throws -> (alice: TestDevice, bob: TestDevice) {
    let alice = try await TestDevice.make(name: "15550001", device: 1)
    let bob = try await TestDevice.make(name: "15550002", device: 2)
    try await SessionBuilder(store: alice.store, address: bob.address).process(bundle: try await bob.bundle())
    let first = try await alice.cipher(with: bob.address).encrypt(Data("hello".utf8))
    XCTAssertEqual(first.type, "pkmsg")
    _ = try await bob.cipher(with: alice.address).decrypt(first)
    let answer = try await bob.cipher(with: alice.address).encrypt(Data("hi".utf8))
    XCTAssertEqual(answer.type, "msg")
    _ = try await alice.cipher(with: bob.address).decrypt(answer)
    return (alice, bob)
}

/// Asserts that `body` throws a `SignalError` with `code`.
func assertSignalError<T>(
    _ code: SignalError.Code, _ message: @autoclosure () -> String = "", file: StaticString = #filePath, line: UInt = #line,
    _ body: () async throws -> T
) async {
    do {
        _ = try await body()
        XCTFail("expected \(code), got success. \(message())", file: file, line: line)
    } catch let error as SignalError {
        XCTAssertEqual(error.code, code, "\(error) \(message())", file: file, line: line)
    } catch {
        XCTFail("expected SignalError \(code), got \(error). \(message())", file: file, line: line)
    }
}

/// A small seeded generator so shuffles and bursts repeat run to run.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension Data {
    init(hex: String) {
        var bytes = [UInt8]()
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            bytes.append(UInt8(hex[index..<next], radix: 16)!)
            index = next
        }
        self.init(bytes)
    }
    var hex: String { map { String(format: "%02x", $0) }.joined() }
}
