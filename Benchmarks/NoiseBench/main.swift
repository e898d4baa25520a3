// noise-bench: Noise transport throughput (AES-256-GCM seal + 3-byte framing,
// as NoiseSession does it) against raw swift-crypto AES-GCM seals in the same
// run, for a few message sizes. A report, not a test: run it with
//   swift run -c release noise-bench [--seconds 0.5]
import Crypto
import Foundation
import WAClient
import WACrypto

@inline(never) func blackHole<T>(_ value: T) { withExtendedLifetime(value) {} }

func establishedPair() throws -> (client: NoiseSession, server: NoiseSession) {
    let issuer = CertChainIssuer()
    let server = Curve25519KeyPair.generate()
    var initiator = NoiseInitiator(staticKey: .generate(), clientPayload: Data(), verifier: issuer.verifier)
    var responder = NoiseResponder(staticKey: server, certificateChain: try issuer.chain(for: server.publicKey))
    guard case .send(let hello) = try initiator.start() else { fatalError("no hello") }
    var client: NoiseSession?, serverSession: NoiseSession?
    for case .send(let reply) in try responder.receive(hello) {
        for action in try initiator.receive(reply) {
            switch action {
            case .send(let finish):
                for case .established(let result) in try responder.receive(finish) { serverSession = result.session }
            case .established(let result): client = result.session
            }
        }
    }
    return (client!, serverSession!)
}

/// Runs `body` repeatedly for about `seconds`; returns operations per second.
func measure(seconds: Double, _ body: () throws -> Void) rethrows -> Double {
    let clock = ContinuousClock()
    for _ in 0..<100 { try body() }  // warm-up
    var iterations = 0
    let start = clock.now
    let budget = Duration.milliseconds(Int64(seconds * 1000))
    while clock.now - start < budget {
        for _ in 0..<64 { try body() }
        iterations += 64
    }
    let elapsed = clock.now - start
    let secs = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    return Double(iterations) / secs
}

var seconds = 0.5
if let index = CommandLine.arguments.firstIndex(of: "--seconds"), index + 1 < CommandLine.arguments.count {
    seconds = Double(CommandLine.arguments[index + 1]) ?? seconds
}

var (client, server) = try establishedPair()
let rawKey = SymmetricKey(size: .bits256)
print("noise-bench: ~\(seconds)s per column; best of 3 alternating rounds; MB/s of plaintext (1 MB = 10^6 bytes)")
print("size      raw AES-GCM seal   Noise seal+frame   ratio   Noise seal+frame+deframe+open")
for size in [64, 1024, 16 * 1024, 256 * 1024] {
    let plaintext = Data((0..<size).map { UInt8(truncatingIfNeeded: $0) })
    var counter: UInt32 = 0
    // Three alternating rounds each, best kept: the other core is often busy.
    var raw = 0.0, noise = 0.0
    for _ in 0..<3 {
        raw = max(raw, try measure(seconds: seconds / 3) {
            var nonceBytes = [UInt8](repeating: 0, count: 12)
            nonceBytes[8] = UInt8(truncatingIfNeeded: counter >> 24)
            nonceBytes[9] = UInt8(truncatingIfNeeded: counter >> 16)
            nonceBytes[10] = UInt8(truncatingIfNeeded: counter >> 8)
            nonceBytes[11] = UInt8(truncatingIfNeeded: counter)
            counter &+= 1
            blackHole(try AES.GCM.seal(plaintext, using: rawKey, nonce: AES.GCM.Nonce(data: nonceBytes)))
        })
        noise = max(noise, try measure(seconds: seconds / 3) { blackHole(try client.seal(plaintext)) })
    }
    // A full trip: the server seals and frames, the client deframes and opens.
    var sink = 0
    let roundTrip = try measure(seconds: seconds) {
        sink &+= try client.receive(try server.seal(plaintext)).count
    }
    blackHole(sink)
    let mb = { (rate: Double) in rate * Double(size) / 1e6 }
    print(String(format: "%-9d %10.1f MB/s    %10.1f MB/s   %5.2f   %10.1f MB/s",
                 size, mb(raw), mb(noise), noise / raw, mb(roundTrip)))
}
