import Foundation
import XCTest
@testable import WAClient

final class TransportPayloadTests: XCTestCase {
    func testPlainAndCompressedRoundTrip() throws {
        let node = Data((0..<5000).map { UInt8($0 % 7) })
        XCTAssertEqual(TransportPayload.encode(node).first, 0)
        XCTAssertEqual(try TransportPayload.decode(TransportPayload.encode(node)), node)
        let compressed = try TransportPayload.encodeCompressed(node)
        XCTAssertEqual(compressed.first, 0x02)
        XCTAssertLessThan(compressed.count, node.count / 10)
        XCTAssertEqual(try TransportPayload.decode(compressed), node)
    }

    /// zlib bytes made by Python's zlib.compress(b"<iq/>" * 3), a peer independent of ours.
    func testInflatesForeignZlib() throws {
        let foreign = Data([0x78, 0x9c, 0xb3, 0xc9, 0x2c, 0xd4, 0xb7, 0xb3, 0x81, 0x13, 0x00, 0x24, 0xf9, 0x04, 0x8a])
        XCTAssertEqual(try TransportPayload.decode(Data([0x02]) + foreign), Data("<iq/><iq/><iq/>".utf8))
    }

    func testInflateIsBounded() throws {
        let bomb = try TransportPayload.encodeCompressed(Data(count: 1 << 20))
        XCTAssertLessThan(bomb.count, 2000)
        XCTAssertThrowsError(try TransportPayload.decode(bomb, maxInflatedSize: 64 * 1024)) {
            XCTAssertEqual(($0 as? WAClientError)?.code, .payloadTooLarge)
        }
        XCTAssertEqual(try TransportPayload.decode(bomb, maxInflatedSize: 1 << 20).count, 1 << 20)
    }

    func testGarbageIsTypedError() {
        XCTAssertThrowsError(try TransportPayload.decode(Data())) {
            XCTAssertEqual(($0 as? WAClientError)?.code, .payloadMalformed)
        }
        XCTAssertThrowsError(try TransportPayload.decode(Data([0x02, 0x01, 0x02, 0x03]))) {
            XCTAssertEqual(($0 as? WAClientError)?.code, .payloadMalformed)
        }
        let truncated = try! TransportPayload.encodeCompressed(Data(repeating: 1, count: 1000)).dropLast(4)
        XCTAssertThrowsError(try TransportPayload.decode(truncated)) {
            XCTAssertEqual(($0 as? WAClientError)?.code, .payloadMalformed)
        }
    }
}
