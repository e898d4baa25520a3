@testable import AMQP
import XCTest

/// Pure parts of the AMQP module, no broker needed.
final class UnitTests: XCTestCase {
    func testConfirmTrackerSingleMultipleAndUnknownTags() {
        var t = ConfirmTracker<Int>()
        for i in 1...6 { XCTAssertEqual(t.register(i * 10), UInt64(i)) }
        XCTAssertEqual(t.settle(tag: 2, multiple: false), [20])
        XCTAssertEqual(t.settle(tag: 2, multiple: false), [], "a repeated tag settles nothing")
        XCTAssertEqual(t.settle(tag: 4, multiple: true), [10, 30, 40])
        XCTAssertEqual(t.settle(tag: 99, multiple: true), [50, 60], "a tag past the end settles what exists")
        XCTAssertTrue(t.isEmpty)
        _ = t.register(70)
        XCTAssertEqual(t.reset(), [70])
        XCTAssertEqual(t.register(80), 1, "a new channel numbers from 1 again")
    }

    func testAckCoalescerFoldsInOrderAcksAndKeepsOrderAroundNacks() {
        var a = AckCoalescer()
        for t in 1...5 { XCTAssertEqual(a.settle(.ack(multiple: false), tag: UInt64(t)), []) }
        XCTAssertEqual(a.flush(), [.ack(tag: 5, multiple: true)], "an in-order run is one frame")
        XCTAssertEqual(a.flush(), [])

        // 6 still open, 7 and 8 acked: they cannot be folded past the gap.
        _ = a.settle(.ack(multiple: false), tag: 7)
        _ = a.settle(.ack(multiple: false), tag: 8)
        XCTAssertEqual(a.flush(), [.ack(tag: 7, multiple: false), .ack(tag: 8, multiple: false)])
        // A nack flushes queued acks first, then goes out as it is.
        _ = a.settle(.ack(multiple: false), tag: 9)
        XCTAssertEqual(a.settle(.nack(requeue: true, multiple: false), tag: 6),
                       [.ack(tag: 9, multiple: false), .nack(tag: 6, multiple: false, requeue: true)])
        XCTAssertEqual(a.lowestUnsettled, 10, "6 settled closes the gap up to 9")
        _ = a.settle(.ack(multiple: false), tag: 10)
        XCTAssertEqual(a.flush(), [.ack(tag: 10, multiple: true)], "a multiple ack never covers an unsettled tag")

        XCTAssertEqual(a.settle(.ack(multiple: false), tag: 3), [], "a second settlement of a tag is dropped")
        XCTAssertEqual(a.flush(), [])
        XCTAssertEqual(a.settle(.reject(requeue: false), tag: 12), [.reject(tag: 12, requeue: false)])
        _ = a.settle(.ack(multiple: false), tag: 11)
        XCTAssertEqual(a.flush(), [.ack(tag: 11, multiple: true)])
        XCTAssertEqual(a.lowestUnsettled, 13)
        XCTAssertEqual(a.settle(.ack(multiple: true), tag: 20), [.ack(tag: 20, multiple: true)])
        XCTAssertEqual(a.lowestUnsettled, 21)
    }

    func testReconnectBackoffGrowsCapsAndJitters() {
        let p = AMQPConfiguration.ReconnectPolicy(initialDelay: .milliseconds(100), maxDelay: .seconds(5), multiplier: 2, jitter: 0.2)
        XCTAssertEqual(p.delay(attempt: 1, random: 0.5), .milliseconds(100))
        XCTAssertEqual(p.delay(attempt: 4, random: 0.5), .milliseconds(800))
        XCTAssertEqual(p.delay(attempt: 30, random: 0.5), .seconds(5))
        XCTAssertEqual(p.delay(attempt: 4, random: 0), .milliseconds(640))
        XCTAssertEqual(p.delay(attempt: 4, random: 0.999_999), .milliseconds(959))
    }

    func testTopologyRecorderReplaysInDependencyOrderAndForgets() {
        var t = TopologyRecorder()
        t.record(AMQPBinding(queue: "q", exchange: "x", routingKey: "k"))
        t.record(AMQPQueueDeclaration(name: "q"), actualName: "q")
        t.record(AMQPExchangeDeclaration(name: "x", type: .direct))
        t.record(AMQPQueueDeclaration(name: ""), actualName: "amq.gen-1")
        t.record(AMQPBinding(queue: "amq.gen-1", exchange: "x", routingKey: "k2"))
        let kinds = t.replayPlan().map { step -> String in
            switch step {
            case .exchange(let d): "x:\(d.name)"
            case .queue(_, let n): "q:\(n)"
            case .binding(let b): "b:\(b.queue)"
            }
        }
        XCTAssertEqual(kinds, ["x:x", "q:q", "q:amq.gen-1", "b:q", "b:amq.gen-1"])
        t.renamed("amq.gen-1", to: "amq.gen-2")
        XCTAssertEqual(t.currentName(of: "amq.gen-1"), "amq.gen-2")
        t.forgetQueue("amq.gen-1")
        t.forgetExchange("x")
        XCTAssertEqual(t.replayPlan().count, 1)
    }

    func testReplyCodesMapToStableCodes() {
        XCTAssertEqual(AMQPError.reply(405, "RESOURCE_LOCKED").code, .resourceLocked)
        XCTAssertEqual(AMQPError.reply(404, "NOT_FOUND").code, .notFound)
        XCTAssertEqual(AMQPError.reply(403, "ACCESS_REFUSED").code, .accessRefused)
        XCTAssertEqual(AMQPError.reply(406, "PRECONDITION_FAILED").code, .preconditionFailed)
        XCTAssertTrue(AMQPError.reply(320, "CONNECTION_FORCED").isRetryable)
        XCTAssertFalse(AMQPError.reply(403, "ACCESS_REFUSED").isRetryable)
        XCTAssertEqual(AMQPError.reply(999, "?").code, .serverError)
    }
}
