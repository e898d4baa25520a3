import XCTest
@testable import WABinary

final class PropertyTests: XCTestCase {
    /// decode(encode(tree)) == tree, and re-encoding gives the same bytes.
    func testRandomTreesRoundTripExactly() throws {
        var generator = NodeGenerator(seed: 0x5EED_0001)
        var totalBytes = 0
        var generated = ContinuousClock.Duration.zero, coded = ContinuousClock.Duration.zero
        for i in 0..<3_000 {
            let t0 = ContinuousClock.now
            let node = generator.node()
            let t1 = ContinuousClock.now
            generated += t1 - t0
            defer { coded += ContinuousClock.now - t1 }
            let bytes = try BinaryEncoder.encode(node)
            totalBytes += bytes.count
            let decoded: Node
            do {
                decoded = try BinaryDecoder.decode(bytes)
            } catch {
                XCTFail("tree \(i): \(error)")
                continue
            }
            XCTAssertEqual(decoded, node, "tree \(i)")
            XCTAssertEqual(try BinaryEncoder.encode(decoded), bytes, "tree \(i)")
            XCTAssertEqual(try BinaryDecoder.decodeFrame(try BinaryEncoder.encodeFrame(node)), node, "tree \(i)")
        }
        print("property: 3000 trees, \(totalBytes) bytes; generating \(generated), coding+checking \(coded)")
        XCTAssertGreaterThan(totalBytes, 100_000, "the generator should make non-trivial trees")
    }

    /// Every JID the generator makes survives text form and binary form.
    func testRandomJIDsRoundTrip() throws {
        var generator = NodeGenerator(seed: 0x5EED_0002)
        for _ in 0..<5_000 {
            let jid = generator.jid()
            let node = Node("iq", [Attribute("to", .jid(jid))])
            XCTAssertEqual(try BinaryDecoder.decode(try BinaryEncoder.encode(node)).jid("to"), jid)
            // The text form drops only the interop integrator.
            if jid.server != JID.interopServer {
                XCTAssertEqual(try JID(parsing: jid.description), jid, jid.description)
            }
        }
    }
}
