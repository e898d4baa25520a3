import XCTest
import WAClient
@testable import Bridge

final class BridgeConfigurationTests: XCTestCase {
    func testDefaultsAreTheDocumentedOnes() throws {
        let c = try BridgeConfiguration.resolve(flags: [:], environment: [:], fileContents: nil)
        XCTAssertEqual(c.amqpURL, "amqp://guest:guest@127.0.0.1:5672/")
        XCTAssertEqual(c.dataDir, "./data")
        XCTAssertEqual(c.adminHost, "127.0.0.1")
        XCTAssertEqual(c.adminPort, 8080)
        XCTAssertEqual(c.amqpHeartbeat, 30)
        XCTAssertEqual(c.topologyPrefix, "wa")
        XCTAssertNil(c.adminToken)
    }

    /// `WABRIDGE_WA_VERSION` reaches the client configuration; unset keeps the built-in default;
    /// anything but three numbers is refused at start with a code.
    func testWAVersionOverride() throws {
        let unset = try BridgeConfiguration.resolve(flags: [:], environment: [:], fileContents: nil)
        XCTAssertNil(unset.waVersion)
        XCTAssertEqual(try unset.deviceManagerConfiguration().client.appVersion, WAClientConfiguration.defaultAppVersion)
        let set = try BridgeConfiguration.resolve(flags: [:], environment: ["WABRIDGE_WA_VERSION": "2.3000.1099999999"], fileContents: nil)
        XCTAssertEqual(set.waVersion, [2, 3000, 1_099_999_999])
        XCTAssertEqual(try set.deviceManagerConfiguration().client.appVersion, [2, 3000, 1_099_999_999])
        for bad in ["2.3000", "latest", "2.3000.-1", "2.3000.1.1"] {
            XCTAssertThrowsError(try BridgeConfiguration.resolve(flags: [:], environment: ["WABRIDGE_WA_VERSION": bad], fileContents: nil), bad) {
                XCTAssertEqual(($0 as? ConfigurationError)?.code, .invalidValue, bad)
            }
        }
    }

    func testFlagsBeatEnvironmentWhichBeatsTheFile() throws {
        let file = """
            # comment
            WABRIDGE_AMQP_URL=amqp://file@h/
            WABRIDGE_DATA_DIR = "/var/lib/wabridge"
            WABRIDGE_ADMIN_PORT=9000
            WABRIDGE_LOG_LEVEL=DEBUG

            """
        let env = ["WABRIDGE_AMQP_URL": "amqp://env@h/", "WABRIDGE_ADMIN_PORT": "9100", "PATH": "/bin"]
        let c = try BridgeConfiguration.resolve(flags: [.amqpURL: "amqps://flag@h/"], environment: env, fileContents: file)
        XCTAssertEqual(c.amqpURL, "amqps://flag@h/")
        XCTAssertEqual(c.adminPort, 9100)
        XCTAssertEqual(c.dataDir, "/var/lib/wabridge")
        XCTAssertEqual(c.logLevel, "debug")
    }

    func testBadSettingsAreRefusedWithACode() {
        func code(_ flags: [BridgeConfiguration.Key: String] = [:], file: String? = nil) -> ConfigurationError.Code? {
            do {
                _ = try BridgeConfiguration.resolve(flags: flags, environment: [:], fileContents: file)
                return nil
            } catch {
                return error.code
            }
        }
        XCTAssertEqual(code([.amqpURL: "http://x/"]), .invalidValue)
        XCTAssertEqual(code([.adminPort: "eighty"]), .invalidValue)
        XCTAssertEqual(code([.adminPort: "70000"]), .invalidValue)
        XCTAssertEqual(code([.amqpVerifyPeer: "maybe"]), .invalidValue)
        XCTAssertEqual(code([.logLevel: "loud"]), .invalidValue)
        XCTAssertEqual(code([.topologyPrefix: "a b"]), .invalidValue)
        XCTAssertEqual(code(file: "WABRIDGE_NOPE=1"), .unknownSetting)
        XCTAssertEqual(code(file: "just words"), .fileSyntax)
        XCTAssertEqual(code([.adminHost: "0.0.0.0"]), .adminTokenRequired)
        XCTAssertNil(code([.adminHost: "0.0.0.0", .adminToken: "s3cret"]))
        XCTAssertNil(code([.adminHost: "::1"]))
    }

    func testAMQPSettingsCarryOver() throws {
        let c = try BridgeConfiguration.resolve(
            flags: [.amqpURL: "amqps://u:p@broker:5671/prod", .amqpCAFile: "/ca.pem", .amqpHeartbeat: "10", .workerName: "w-1"],
            environment: [:], fileContents: nil)
        let a = try c.amqpConfiguration()
        XCTAssertEqual(a.endpoint.host, "broker")
        XCTAssertEqual(a.endpoint.vhost, "prod")
        XCTAssertTrue(a.endpoint.tls)
        XCTAssertEqual(a.tls.caFile, "/ca.pem")
        XCTAssertEqual(a.heartbeat, 10)
        XCTAssertEqual(a.connectionName, "w-1")
    }

    func testJSONLogLinesAreParseableAndCarryMetadata() throws {
        let lines = LinesBox()
        var h = JSONLogHandler(label: "t", sink: { lines.append($0) })
        h.metadata["device"] = "sales-1"
        h.log(event: LogEvent(level: .warning, message: "hello \"world\"", metadata: ["n": "1"], source: "s", file: #file, function: #function, line: #line))
        let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(lines.all[0].utf8)) as? [String: String])
        XCTAssertEqual(obj["message"], "hello \"world\"")
        XCTAssertEqual(obj["level"], "warning")
        XCTAssertEqual(obj["device"], "sales-1")
        XCTAssertEqual(obj["n"], "1")
        XCTAssertNotNil(obj["time"])
    }
}

import Logging
import Synchronization

final class LinesBox: Sendable {
    private let lines = Mutex<[String]>([])
    func append(_ s: String) { lines.withLock { $0.append(s) } }
    var all: [String] { lines.withLock { $0 } }
}
