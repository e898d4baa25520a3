import Foundation
import XCTest
@testable import WAClient

final class FrameCodecTests: XCTestCase {
    private let payloads: [Data] = [
        Data(), Data([1]), Data("hello".utf8), Data(repeating: 0xAB, count: 300), Data((0..<70_000).map { UInt8($0 % 251) }),
    ]

    private var stream: Data {
        payloads.reduce(Data()) { $0 + (try! FrameCodec.frame($1)) }
    }

    func testHeaderAndLengthPrefix() throws {
        XCTAssertEqual(FrameCodec.header, Data([0x57, 0x41, 0x06, 0x03]))
        XCTAssertEqual(try FrameCodec.frame(Data([9, 9])), Data([0, 0, 2, 9, 9]))
        XCTAssertEqual(try FrameCodec.frame(Data(count: 70_000)).prefix(3), Data([0x01, 0x11, 0x70]))
    }

    func testWholeStreamAtOnce() throws {
        var decoder = FrameDecoder()
        XCTAssertEqual(try decoder.feed(stream), payloads)
        XCTAssertEqual(decoder.bufferedByteCount, 0)
    }

    func testByteByByte() throws {
        var decoder = FrameDecoder()
        var frames: [Data] = []
        for byte in stream { frames += try decoder.feed([byte]) }
        XCTAssertEqual(frames, payloads)
    }

    func testRandomChunksGiveSameFrames() throws {
        var generator = SystemRandomNumberGenerator()
        let bytes = stream
        for _ in 0..<50 {
            var decoder = FrameDecoder()
            var frames: [Data] = []
            var index = 0
            while index < bytes.count {
                let size = Int.random(in: 1...4096, using: &generator)
                let end = min(bytes.count, index + size)
                frames += try decoder.feed(bytes[index..<end])
                index = end
            }
            XCTAssertEqual(frames, payloads)
        }
    }

    func testServerSideHeaderSplitAndMerged() throws {
        var decoder = FrameDecoder(expectsHeader: true)
        let bytes = FrameCodec.header + stream
        XCTAssertEqual(try decoder.feed(bytes.prefix(2)), [])
        XCTAssertEqual(try decoder.feed(bytes.dropFirst(2)), payloads)
    }

    /// An `ED 0 1 <len:3> <routing info>` preamble before the header (edge routing) is read off,
    /// byte by byte or at once; a bad one is a typed error, never a crash.
    func testServerSideEdgeRoutingPreamble() throws {
        let info = Data([8, 2, 8, 5, 0x45, 0x44])
        let bytes = FrameCodec.routingPreamble(info) + FrameCodec.header + stream
        XCTAssertEqual(bytes.prefix(7), Data([0x45, 0x44, 0, 1, 0, 0, 6]))
        var whole = FrameDecoder(expectsHeader: true)
        XCTAssertEqual(try whole.feed(bytes), payloads)
        XCTAssertEqual(whole.routingInfo, info)
        var split = FrameDecoder(expectsHeader: true)
        var frames: [Data] = []
        for byte in bytes.prefix(40) { frames += try split.feed([byte]) }
        frames += try split.feed(bytes.dropFirst(40))
        XCTAssertEqual(frames, payloads)
        XCTAssertEqual(split.routingInfo, info)
        var plain = FrameDecoder(expectsHeader: true)
        _ = try plain.feed(FrameCodec.header + stream)
        XCTAssertNil(plain.routingInfo)
        for bad in [Data([0x45, 0x44, 0, 2, 0, 0, 1, 9]), Data([0x45, 0x44, 0, 1, 0, 0, 0]), Data([0x45, 0x44, 0, 1, 0x10, 0, 0])] {
            var decoder = FrameDecoder(expectsHeader: true)
            XCTAssertThrowsError(try decoder.feed(bad + FrameCodec.header)) {
                XCTAssertEqual(($0 as? WAClientError)?.code, .badHeader)
            }
        }
    }

    func testGarbledHeaderIsTypedError() {
        var decoder = FrameDecoder(expectsHeader: true)
        XCTAssertThrowsError(try decoder.feed(Data([0x57, 0x42]))) {
            XCTAssertEqual(($0 as? WAClientError)?.code, .badHeader)
        }
        var other = FrameDecoder(expectsHeader: true)
        XCTAssertThrowsError(try other.feed(Data([0x57, 0x41, 0x05, 0x03, 0, 0, 0]))) {
            XCTAssertEqual(($0 as? WAClientError)?.code, .badHeader)
        }
    }

    func testOversizedFramesAreTypedErrors() {
        XCTAssertThrowsError(try FrameCodec.frame(Data(count: FrameCodec.maxFrameSize + 1))) {
            XCTAssertEqual(($0 as? WAClientError)?.code, .frameTooLarge)
        }
        var decoder = FrameDecoder(maxFrameSize: 1024)
        // The length alone is enough to refuse: no need to wait for the body.
        XCTAssertThrowsError(try decoder.feed(Data([0x00, 0x04, 0x01]))) {
            XCTAssertEqual(($0 as? WAClientError)?.code, .frameTooLarge)
        }
        var exact = FrameDecoder(maxFrameSize: 1024)
        XCTAssertEqual(try exact.feed(try FrameCodec.frame(Data(count: 1024))).first?.count, 1024)
    }

    func testPartialFrameStaysBuffered() throws {
        var decoder = FrameDecoder()
        XCTAssertEqual(try decoder.feed(Data([0, 0, 5, 1, 2])), [])
        XCTAssertEqual(decoder.bufferedByteCount, 5)
        XCTAssertEqual(try decoder.feed(Data([3, 4, 5, 0, 0])), [Data([1, 2, 3, 4, 5])])
        XCTAssertEqual(decoder.bufferedByteCount, 2)
    }
}
