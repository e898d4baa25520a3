import Foundation
import WACrypto
import XCTest
@testable import WASignal

/// A Swift-side device for tests: an in-memory store with a signed prekey
/// (id 1) and one-time prekeys 1...preKeys.
struct TestDevice: Sendable {
    let store: InMemorySignalStore
    let address: SignalAddress

    static func make(name: String, device: UInt32 = 1, preKeys: Int = 10) async throws -> TestDevice {
        let store = InMemorySignalStore()
        let identity = await store.identityKeyPair()
        await store.storeSignedPreKey(try SignedPreKeyRecord.generate(id: 1, identity: identity))
        for record in KeyHelper.generatePreKeys(start: 1, count: preKeys) { await store.storePreKey(record) }
        return TestDevice(store: store, address: SignalAddress(name: name, deviceID: device))
    }

    /// Our bundle offering one-time prekey `preKeyID` (nil: none).
    func bundle(preKeyID: UInt32? = 1) async throws -> PreKeyBundle {
        let signed = try await store.loadSignedPreKey(id: 1)!
        let preKey = preKeyID == nil ? nil : try await store.loadPreKey(id: preKeyID!)
        return PreKeyBundle(
            registrationID: await store.localRegistrationID(), deviceID: address.deviceID, preKeyID: preKey?.id,
            preKey: preKey?.keyPair.publicKey, signedPreKeyID: signed.id, signedPreKey: signed.keyPair.publicKey,
            signedPreKeySignature: signed.signature, identityKey: await store.identityKeyPair().publicKey)
    }

    func cipher(with peer: SignalAddress) -> SessionCipher { SessionCipher(store: store, address: peer) }

    func sessionBytes(with peer: SignalAddress) async throws -> Data? {
        try await store.loadSession(for: peer)?.serialized()
    }
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
