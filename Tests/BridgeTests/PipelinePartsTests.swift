@testable import Bridge
import Foundation
import XCTest

/// The small parts the command pipeline stands on.
final class PipelinePartsTests: XCTestCase {
    func testTokenBucketTakeNeverQueues() {
        var b = TokenBucket(rate: 2, burst: 2)
        XCTAssertTrue(b.take(now: .zero))
        XCTAssertTrue(b.take(now: .zero))
        XCTAssertFalse(b.take(now: .zero), "empty: take refuses instead of queueing")
        XCTAssertFalse(b.take(now: .milliseconds(400)), "0.8 token is not a token")
        XCTAssertTrue(b.take(now: .milliseconds(500)), "one token after 0.5 s at 2/s")
        // A refused take leaves the bucket as it was: reserve then waits only its own share.
        XCTAssertEqual(b.reserve(now: .milliseconds(500)), .milliseconds(500))
    }

    func testBatchBufferHandsOverWhatCameInOrderThenEnds() async throws {
        let buffer = BatchBuffer<Int>()
        for i in 0..<5 { buffer.push(i) }
        let first = try await buffer.next(max: 3)
        XCTAssertEqual(first, [0, 1, 2])
        let second = try await buffer.next(max: 10)
        XCTAssertEqual(second, [3, 4])
        let waiting = Task { try await buffer.next(max: 10) }
        try await Task.sleep(for: .milliseconds(50))
        buffer.push(5)
        let third = try await waiting.value
        XCTAssertEqual(third, [5], "a waiting taker is woken by the next push")
        buffer.push(6)
        buffer.finish(nil)
        let fourth = try await buffer.next(max: 10)
        XCTAssertEqual(fourth, [6], "what came before the end is still handed over")
        let end = try await buffer.next(max: 10)
        XCTAssertNil(end)
    }

    func testBatchBufferThrowsTheStreamErrorAfterItsItems() async throws {
        struct Boom: Error {}
        let buffer = BatchBuffer<Int>()
        buffer.push(1)
        buffer.finish(Boom())
        let items = try await buffer.next(max: 10)
        XCTAssertEqual(items, [1])
        do {
            _ = try await buffer.next(max: 10)
            XCTFail("the error comes after the items")
        } catch is Boom {}
    }

    func testBatchBufferWaiterEndsOnCancellation() async throws {
        let buffer = BatchBuffer<Int>()
        let waiting = Task { try await buffer.next(max: 1) }
        try await Task.sleep(for: .milliseconds(50))
        waiting.cancel()
        do {
            _ = try await waiting.value
            XCTFail("a cancelled taker throws")
        } catch is CancellationError {}
    }

    func testInFlightSendsCountsBeginsAndEnds() {
        let f = InFlightSends()
        let ref = InFlightSends.CommandRef(commandID: "c1", correlationID: "corr")
        f.begin([("m1", ref)])
        f.begin([("m1", ref)])  // a retry of the same message while the first is still held
        XCTAssertEqual(f.command(for: "m1"), ref)
        f.end(["m1"])
        XCTAssertEqual(f.command(for: "m1"), ref, "still held by the second begin")
        f.end(["m1"])
        XCTAssertNil(f.command(for: "m1"))
        f.end(["m1", "never"])  // extra ends are harmless
        XCTAssertEqual(f.count, 0)
    }
}

final class JSONValueDecodingTests: XCTestCase {
    /// Every JSON type decodes to its own case: a bool is not a number, 1 is not true.
    func testEachTypeDecodesToItsOwnCase() throws {
        let text = #"{"t":true,"f":false,"one":1,"half":1.5,"s":"1","n":null,"a":[true,1,"x",null,{"k":[]}],"o":{}}"#
        let v = try XCTUnwrap(JSONValue.parse(Data(text.utf8)))
        XCTAssertEqual(v, .object([
            "t": .bool(true), "f": .bool(false), "one": .number(1), "half": .number(1.5), "s": .string("1"), "n": .null,
            "a": .array([.bool(true), .number(1), .string("x"), .null, .object(["k": .array([])])]), "o": .object([:]),
        ]))
        XCTAssertEqual(String(decoding: v.encoded(), as: UTF8.self),
                       #"{"a":[true,1,"x",null,{"k":[]}],"f":false,"half":1.5,"n":null,"o":{},"one":1,"s":"1","t":true}"#)
        XCTAssertNil(JSONValue.parse(Data("{\"a\":".utf8)), "truncated JSON is refused")
    }
}
