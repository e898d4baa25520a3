import XCTest
@testable import Bridge

final class BridgeConfigurationTests: XCTestCase {
    func testDefaults() throws {
        let c = try BridgeConfiguration.resolve(flags: [:], environment: [:], fileContents: nil)
        XCTAssertEqual(c.amqpURL, "amqp://guest:guest@127.0.0.1:5672/")
        XCTAssertEqual(c.dataDir, "./data")
        XCTAssertEqual(c.adminHost, "127.0.0.1")
        XCTAssertEqual(c.adminPort, 8080)
    }
}
