// signal-bench: Signal message rates (1:1 double ratchet, group sender keys)
// beside raw AES-256-CBC + HMAC-SHA256 on the same bytes in the same run, so
// the ratio shows what the protocol costs above its ciphers. A report, not a
// test: run it with
//   swift run -c release signal-bench [--seconds 1] [--size 200]
// Stores are the in-memory actor, so the figures include one actor hop per
// load and store, as a device's real store would have.
import Foundation
import WACrypto
import WASignal

@inline(never) func blackHole<T>(_ value: T) { withExtendedLifetime(value) {} }

func elapsedSeconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

/// Runs `body` for about `seconds`, collecting what it returns; returns ops/s and the outputs.
func measure<T>(seconds: Double, _ body: () async throws -> T) async rethrows -> (rate: Double, outputs: [T]) {
    let clock = ContinuousClock()
    var outputs: [T] = []
    let start = clock.now
    let budget = Duration.milliseconds(Int64(seconds * 1000))
    while clock.now - start < budget {
        for _ in 0..<32 { outputs.append(try await body()) }
    }
    return (Double(outputs.count) / elapsedSeconds(clock.now - start), outputs)
}

/// Runs `body` once per input and returns ops/s.
func measureEach<T>(_ inputs: [T], _ body: (T) async throws -> Void) async rethrows -> Double {
    let clock = ContinuousClock()
    let start = clock.now
    for input in inputs { try await body(input) }
    return Double(inputs.count) / elapsedSeconds(clock.now - start)
}

func argument(_ name: String, _ fallback: Double) -> Double {
    guard let i = CommandLine.arguments.firstIndex(of: name), i + 1 < CommandLine.arguments.count else { return fallback }
    return Double(CommandLine.arguments[i + 1]) ?? fallback
}

let seconds = argument("--seconds", 1)
let size = Int(argument("--size", 200))
let plaintext = MessagePadding.pad(Data((0..<size).map { UInt8(truncatingIfNeeded: $0) }), count: 7)

// Two devices with a session open both ways.
let aliceStore = InMemorySignalStore(), bobStore = InMemorySignalStore()
let alice = SignalAddress(name: "15550001", deviceID: 1), bob = SignalAddress(name: "15550002", deviceID: 2)
let bobIdentity = await bobStore.identityKeyPair()
let signed = try SignedPreKeyRecord.generate(id: 1, identity: bobIdentity)
await bobStore.storeSignedPreKey(signed)
try await SessionBuilder(store: aliceStore, address: bob).process(bundle: PreKeyBundle(
    registrationID: await bobStore.localRegistrationID(), deviceID: 2, preKeyID: nil, preKey: nil,
    signedPreKeyID: 1, signedPreKey: signed.keyPair.publicKey, signedPreKeySignature: signed.signature,
    identityKey: bobIdentity.publicKey))
let aliceCipher = SessionCipher(store: aliceStore, address: bob)
let bobCipher = SessionCipher(store: bobStore, address: alice)
_ = try await bobCipher.decrypt(try await aliceCipher.encrypt(plaintext))
_ = try await aliceCipher.decrypt(try await bobCipher.encrypt(plaintext))

// Raw ciphers: what one message costs without the protocol around it.
let key = Symmetric.randomBytes(32), macKey = Symmetric.randomBytes(32), iv = Symmetric.randomBytes(16)
let (rawEncrypt, rawSealed) = try await measure(seconds: seconds) { () async throws -> Data in
    let ciphertext = try Symmetric.aesCBCEncrypt(plaintext, key: key, iv: iv)
    return ciphertext + Symmetric.hmacSHA256(key: macKey, ciphertext).prefix(8)
}
let rawDecrypt = try await measureEach(rawSealed) { sealed in
    let body = sealed.prefix(sealed.count - 8)
    guard Symmetric.constantTimeEqual(Symmetric.hmacSHA256(key: macKey, body).prefix(8), sealed.suffix(8)) else { fatalError("mac") }
    blackHole(try Symmetric.aesCBCDecrypt(body, key: key, iv: iv))
}

// 1:1, one chain (no DH step): the common case of a burst of messages.
let (oneEncrypt, oneSealed) = try await measure(seconds: seconds) { try await aliceCipher.encrypt(plaintext) }
let oneDecrypt = try await measureEach(oneSealed) { blackHole(try await bobCipher.decrypt($0)) }

// 1:1 ping-pong: every message turns the DH ratchet (two X25519 + a key pair each way).
let (pingPong, _) = try await measure(seconds: seconds) { () async throws -> Void in
    blackHole(try await bobCipher.decrypt(try await aliceCipher.encrypt(plaintext)))
    blackHole(try await aliceCipher.decrypt(try await bobCipher.encrypt(plaintext)))
}

// Groups: sender keys, each message XEdDSA-signed and verified.
let group = SenderKeyName(groupID: "120363000000000001@g.us", sender: alice)
let distribution = try await GroupSessionBuilder(store: aliceStore).create(for: group)
try await GroupSessionBuilder(store: bobStore).process(distribution, from: group)
let groupSender = GroupCipher(store: aliceStore, name: group), groupReceiver = GroupCipher(store: bobStore, name: group)
let (groupEncrypt, groupSealed) = try await measure(seconds: seconds) { try await groupSender.encrypt(plaintext) }
let groupDecrypt = try await measureEach(groupSealed) { blackHole(try await groupReceiver.decrypt($0)) }

print("signal-bench: \(plaintext.count)-byte padded plaintext, ~\(seconds)s per case, messages per second")
print("case                                     encrypt/s    decrypt/s   encrypt ratio  decrypt ratio (vs raw)")
func row(_ name: String, _ e: Double, _ d: Double?) {
    let dText = d.map { String(format: "%10.0f", $0) } ?? String(repeating: " ", count: 10)
    let dRatio = d.map { String(format: "%12.3f", $0 / rawDecrypt) } ?? ""
    let label = name.padding(toLength: 38, withPad: " ", startingAt: 0)
    print(label + String(format: " %10.0f   ", e) + dText + String(format: "   %12.3f  ", e / rawEncrypt) + dRatio)
}
row("raw AES-256-CBC + HMAC-SHA256", rawEncrypt, rawDecrypt)
row("1:1 SessionCipher (same chain)", oneEncrypt, oneDecrypt)
row("1:1 ping-pong (DH ratchet each msg)", pingPong * 2, nil)
row("group GroupCipher (sign / verify)", groupEncrypt, groupDecrypt)
print("(ping-pong counts each message once: encrypt + decrypt + ratchet step per message)")
