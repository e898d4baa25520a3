import XCTest
@testable import AMQP

final class AMQPErrorTests: XCTestCase {
    func testReplyCodesMapToStableCodes() {
        XCTAssertEqual(AMQPError.reply(405, "RESOURCE_LOCKED").code, .resourceLocked)
        XCTAssertEqual(AMQPError.reply(404, "NOT_FOUND").code, .notFound)
        XCTAssertEqual(AMQPError.reply(403, "ACCESS_REFUSED").code, .accessRefused)
        XCTAssertEqual(AMQPError.reply(406, "PRECONDITION_FAILED").code, .preconditionFailed)
        XCTAssertTrue(AMQPError.reply(320, "CONNECTION_FORCED").isRetryable)
    }
}
