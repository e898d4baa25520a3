import XCTest
@testable import WABinary

/// The decoder facing broken or malicious input: every case must end in the
/// expected typed error, quickly, without allocating what the input claims.
final class HostileInputTests: XCTestCase {
    private func assertCode(_ bytes: [UInt8], _ code: WABinaryError.Code, limits: DecoderLimits = .default,
                            file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try BinaryDecoder.decode(bytes, limits: limits), file: file, line: line) { error in
            XCTAssertEqual((error as? WABinaryError)?.code, code, "\(error)", file: file, line: line)
        }
    }

    func testEveryPrefixOfAValidStanzaIsRejected() throws {
        let node = Node("message", attributes: ["id": "3EB0ABCDEF", "to": .jid(try JID(parsing: "15551234567:3@s.whatsapp.net"))],
                        children: [Node("enc", attributes: ["v": "2", "type": "pkmsg"], content: .bytes(Array(repeating: 7, count: 40)))])
        let bytes = try BinaryEncoder.encode(node)
        for length in 0..<bytes.count {
            XCTAssertThrowsError(try BinaryDecoder.decode(Array(bytes.prefix(length))), "prefix \(length)") { error in
                XCTAssertEqual((error as? WABinaryError)?.code, .truncated, "prefix \(length): \(error)")
            }
        }
        XCTAssertEqual(try BinaryDecoder.decode(bytes), node)
    }

    func testClaimedLengthsPastTheEnd() {
        assertCode([0xF8, 0x02, 0x13, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF], .truncated)       // binary32 of 4 GiB
        assertCode([0xF8, 0x02, 0x13, 0xFD, 0x0F, 0xFF, 0xFF, 0x00], .truncated)       // binary20 of 1 MiB
        assertCode([0xF8, 0x02, 0x13, 0xF9, 0xFF, 0xFF, 0xF8, 0x01, 0x13], .truncated) // 65535 children claimed
        assertCode([0xF8, 0x03, 0x13, 0x08, 0xFF, 0x7F, 0x12], .truncated)             // packed string of 127 bytes
        assertCode([0xF9, 0x03, 0xE7, 0x13], .truncated)                               // 999 attributes claimed
    }

    func testLimits() {
        assertCode([0xF9, 0xFF, 0xFF, 0x13], .tooLarge)                                 // 32767 attributes
        let threeChildren: [UInt8] = [0xF8, 0x02, 0x13, 0xF8, 0x03] + Array(repeating: [0xF8, 0x01, 0x1D], count: 3).flatMap { $0 }
        XCTAssertNoThrow(try BinaryDecoder.decode(threeChildren))
        assertCode(threeChildren, .tooLarge, limits: DecoderLimits(maxChildren: 2))
        assertCode([0xF8, 0x05, 0x13, 0x08, 0x13, 0x08, 0x13], .tooLarge, limits: DecoderLimits(maxAttributes: 1))
    }

    func testNestingDeeperThanTheLimitIsRefused() {
        func nested(_ depth: Int) -> [UInt8] {
            var bytes: [UInt8] = []
            for _ in 0..<depth { bytes += [0xF8, 0x02, 0x13, 0xF8, 0x01] }
            bytes += [0xF8, 0x01, 0x13]
            return bytes
        }
        XCTAssertNoThrow(try BinaryDecoder.decode(nested(64)))
        assertCode(nested(65), .tooDeep)
        assertCode(nested(100_000), .tooDeep)   // would overflow the stack without the limit
        assertCode(nested(10), .tooDeep, limits: DecoderLimits(maxDepth: 5))
    }

    func testMalformedValues() {
        assertCode([0xF8, 0x01, 0xF0], .invalidToken)                  // 240 means nothing
        assertCode([0xF8, 0x02, 0x13, 0xF3], .invalidToken)            // nor does 243 as content
        assertCode([0xF8, 0x01, 0xFF, 0x81, 0xCF], .invalidPacked)     // nibble 12 is not in the alphabet
        assertCode([0xF8, 0x01, 0xFF, 0x01, 0xF1], .invalidPacked)     // 15 is only padding
        assertCode([0xF8, 0x01, 0xFF, 0x80], .invalidPacked)           // odd flag, no bytes
        assertCode([0xF8, 0x03, 0x13, 0x08, 0xFC, 0x02, 0xC3, 0x28], .invalidUTF8)
        assertCode([0xF8, 0x01, 0x00], .invalidNode)                   // tag missing
        assertCode([0xF8, 0x01, 0xFF, 0x00], .invalidNode)             // empty tag
        assertCode([0x13], .invalidNode)                               // not a list
        assertCode([0xF8, 0x00], .invalidNode)                         // empty list
        assertCode([0xF8, 0x01, 0xF8, 0x01, 0x13], .invalidNode)       // list as tag
        assertCode([0xF8, 0x03, 0x13, 0xF8, 0x00, 0x13], .expectedString) // list as attribute key
        assertCode([0xF8, 0x03, 0x13, 0x08, 0xF8, 0x00], .expectedString) // list as attribute value
        assertCode([0xF8, 0x03, 0x13, 0x08, 0xFA, 0x03, 0x00], .invalidJID)        // JID without server
        assertCode([0xF8, 0x03, 0x13, 0x08, 0xFA, 0xF8, 0x00, 0x03], .invalidJID)  // list as JID user
        assertCode([0xF8, 0x03, 0x13, 0x08, 0xF6, 0x03, 0x00, 0x01, 0x03], .invalidJID) // FB JID not on msgr
        assertCode([0xF8, 0x03, 0x13, 0x08, 0xF5, 0x03, 0x00, 0x01, 0x00, 0x01, 0x03], .invalidJID)
        assertCode([0xF8, 0x01, 0x13, 0x00], .trailingData)
    }

    func testFrames() throws {
        XCTAssertEqual(try BinaryDecoder.decodeFrame([0x00, 0xF8, 0x01, 0x19]), Node("iq"))
        XCTAssertThrowsError(try BinaryDecoder.decodeFrame([])) { XCTAssertEqual(($0 as? WABinaryError)?.code, .truncated) }
        XCTAssertThrowsError(try BinaryDecoder.decodeFrame([0x02, 0x78, 0x9C])) {
            XCTAssertEqual(($0 as? WABinaryError)?.code, .compressed)
        }
    }

    func testErrorsCarryStableCodesAndOffsets() {
        do {
            _ = try BinaryDecoder.decode([0xF8, 0x02, 0x13, 0xFC, 0x09, 0x01])
            XCTFail("must throw")
        } catch {
            XCTAssertEqual(error.code.rawValue, "binary.truncated")
            XCTAssertEqual(error.offset, 5)
            XCTAssertTrue(error.description.hasPrefix("binary.truncated at 5:"), error.description)
        }
    }
}
