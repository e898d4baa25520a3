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
