import XCTest
@testable import WABinary

/// A bounded, deterministic fuzz run of the decoder: random bytes and
/// mutations of valid frames. Every input must either decode or throw a
/// `WABinaryError` (the decoder's typed throws guarantee the type; a trap
/// would kill the test process). A decoded node must also survive
/// encode → decode unchanged.
final class FuzzTests: XCTestCase {
    static let inputCount = 1_000_000

    func testDecoderSurvivesAMillionHostileInputs() throws {
        var rng = SeededRandom(seed: 0xF0CC_0001)
        var generator = NodeGenerator(seed: 0xF0CC_0002)
        generator.maxDepth = 3
        // A corpus of small valid frames to mutate.
        var corpus: [[UInt8]] = []
        while corpus.count < 300 {
            let bytes = try BinaryEncoder.encode(generator.node())
            if bytes.count <= 160 { corpus.append(bytes) }
        }
        let interesting: [UInt8] = [0x00, 0x01, 0x7F, 0x80, 0xEC, 0xEF, 0xF0, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA, 0xFB, 0xFC, 0xFD, 0xFE, 0xFF]

        var decoded = 0
        var codes: [String: Int] = [:]
        let start = ContinuousClock.now
        var input: [UInt8] = []
        input.reserveCapacity(256)
        for i in 0..<Self.inputCount {
            input.removeAll(keepingCapacity: true)
            if i % 5 == 0 {
                for _ in 0..<Int.random(in: 0...24, using: &rng) { input.append(UInt8.random(in: 0...255, using: &rng)) }
                if !input.isEmpty && Bool.random(using: &rng) { input[0] = 0xF8 }
            } else {
                input.append(contentsOf: corpus[Int.random(in: 0..<corpus.count, using: &rng)])
                for _ in 0..<Int.random(in: 1...3, using: &rng) {
                    mutate(&input, interesting: interesting, using: &rng)
                }
            }
            do {
                let node = try BinaryDecoder.decode(input)
                decoded += 1
                let again = try BinaryDecoder.decode(try BinaryEncoder.encode(node))
                if again != node { XCTFail("re-encode changed the node for input \(input)") }
            } catch {
                codes[error.code.rawValue, default: 0] += 1
            }
        }
        let elapsed = ContinuousClock.now - start
        print("fuzz: \(Self.inputCount) inputs in \(elapsed); decoded \(decoded); errors \(codes.sorted { $0.key < $1.key })")
        let known: Set<String> = [
            "binary.truncated", "binary.trailing_data", "binary.invalid_token", "binary.invalid_node",
            "binary.expected_string", "binary.invalid_packed", "binary.invalid_utf8", "binary.too_deep",
            "binary.too_large", "binary.invalid_jid",
        ]
        XCTAssertTrue(Set(codes.keys).isSubset(of: known), "unexpected codes \(codes.keys)")
        XCTAssertGreaterThan(decoded, 1_000, "mutations should still decode sometimes")
        XCTAssertGreaterThan(codes.count, 5, "the run should reach many error paths")
    }

    private func mutate(_ input: inout [UInt8], interesting: [UInt8], using rng: inout SeededRandom) {
        guard !input.isEmpty else { input.append(UInt8.random(in: 0...255, using: &rng)); return }
        let at = Int.random(in: 0..<input.count, using: &rng)
        switch Int.random(in: 0...6, using: &rng) {
        case 0: input[at] = UInt8.random(in: 0...255, using: &rng)
        case 1: input[at] = interesting[Int.random(in: 0..<interesting.count, using: &rng)]
        case 2: input[at] ^= UInt8(1) << UInt8.random(in: 0...7, using: &rng)
        case 3: input.removeSubrange(at...)                                   // truncate
        case 4: input.insert(interesting[Int.random(in: 0..<interesting.count, using: &rng)], at: at)
        case 5: input.remove(at: at)
        default:                                                              // duplicate a chunk
            let end = min(input.count, at + Int.random(in: 1...8, using: &rng))
            input.insert(contentsOf: input[at..<end], at: at)
        }
    }
}
