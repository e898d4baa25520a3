import AdminHTTP
import Foundation
import WASim
import XCTest

/// `wabridge devices …` and `wabridge health` against a running `wabridge serve`
/// (pointed at an in-process simulator; the broker may be absent for the admin API).
final class DevicesCommandTests: XCTestCase {
    func testDevicesCommandsOverTheAdminAPI() async throws {
        let sim = try WASim()
        try await sim.start()
        let port = try CLIProcess.freeLoopbackPort()
        let admin = "http://127.0.0.1:\(port)"
        let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("wabridge-cli-\(UUID().uuidString)").path
        let serve = try CLIProcess.start("wabridge", ["serve"], env: [
            "WABRIDGE_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/",
            "WABRIDGE_DATA_DIR": dataDir,
            "WABRIDGE_WA_URL": await sim.endpoint.absoluteString,
            "WABRIDGE_WA_ROOT_KEY": sim.rootPublicKey.rawRepresentation.map { String(format: "%02x", $0) }.joined(),
            "WABRIDGE_ADMIN_PORT": String(port),
            "WABRIDGE_ADMIN_TOKEN": "t0ken",
        ])
        // The admin URL and token from the environment, as an operator's shell would have them.
        let env = ["WABRIDGE_ADMIN_URL": admin, "WABRIDGE_ADMIN_TOKEN": "t0ken"]
        func cli(_ args: String...) async throws -> (status: Int32?, stdout: String, stderr: String) {
            try await CLIProcess.run("wabridge", args, env: env)
        }

        var healthy = false
        for _ in 0..<150 where !healthy {
            healthy = try await CLIProcess.run("wabridge", ["health", "--admin-url", admin]).status == 0
            if !healthy { try await Task.sleep(for: .milliseconds(200)) }
        }
        XCTAssertTrue(healthy, "serve never answered /healthz: \(serve.stderr.value)")

        let empty = try await cli("devices", "list")
        XCTAssertEqual(empty.status, 0, empty.stderr)
        XCTAssertEqual(empty.stdout.split(separator: "\n").count, 1, "header only: \(empty.stdout)")
        XCTAssertTrue(empty.stdout.hasPrefix("ID"), empty.stdout)

        let created = try await cli("devices", "create", "--id", "sales-1")
        XCTAssertEqual(created.status, 0, created.stderr)
        XCTAssertTrue(created.stdout.contains("sales-1"), created.stdout)
        let again = try await cli("devices", "create", "--id", "sales-1")
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.stderr.contains("DEVICE_EXISTS"), again.stderr)

        let table = try await cli("devices", "list")
        XCTAssertEqual(table.status, 0)
        let rows = table.stdout.split(separator: "\n")
        XCTAssertEqual(rows.count, 2, table.stdout)
        XCTAssertTrue(rows.last?.hasPrefix("sales-1  ") ?? false, table.stdout)
        let json = try await cli("devices", "list", "--json")
        let devices = jsonObject(json.stdout)?["devices"] as? [[String: Any]]
        XCTAssertEqual(devices?.compactMap { $0["id"] as? String }, ["sales-1"])

        let missing = try await cli("devices", "show", "nope")
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("DEVICE_NOT_FOUND"), missing.stderr)
        let badToken = try await CLIProcess.run("wabridge", ["devices", "list", "--admin-url", admin, "--token", "wrong"])
        XCTAssertEqual(badToken.status, 1)
        XCTAssertTrue(badToken.stderr.contains("UNAUTHORIZED"), badToken.stderr)
        let unreachable = try await CLIProcess.run("wabridge", ["devices", "list", "--admin-url", "http://127.0.0.1:1"])
        XCTAssertEqual(unreachable.status, 4)
        XCTAssertTrue(unreachable.stderr.contains("ADMIN_UNREACHABLE"), unreachable.stderr)

        // login-qr draws libqrencode's modules and prints the live code: the simulated phone scans it.
        let login = try await cli("devices", "login-qr", "sales-1")
        XCTAssertEqual(login.status, 0, login.stderr)
        let lines = login.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let codeLine = try XCTUnwrap(lines.first { $0.hasPrefix("code: ") }, login.stdout)
        let code = String(codeLine.dropFirst("code: ".count))
        let drawing = Array(lines.prefix { !$0.hasPrefix("code: ") })
        XCTAssertEqual(try Self.modules(fromDrawing: drawing), try QRImage.modules(code))
        await sim.createPhone(number: "15557070707")
        _ = try await sim.scanQR(phone: "15557070707", qr: code)
        var state = ""
        for _ in 0..<100 where state != "connected" {
            state = jsonObject(try await cli("devices", "show", "sales-1", "--json").stdout)?["state"] as? String ?? ""
            if state != "connected" { try await Task.sleep(for: .milliseconds(200)) }
        }
        XCTAssertEqual(state, "connected")
        let shown = try await cli("devices", "show", "sales-1")
        XCTAssertTrue(shown.stdout.contains("15557070707"), "the linked JID is shown: \(shown.stdout)")

        // pair-code prints the code the simulated phone then enters.
        _ = try await cli("devices", "create", "--id", "sales-2")
        await sim.createPhone(number: "15557070708")
        let pairing = try await cli("devices", "pair-code", "sales-2", "--phone", "+15557070708")
        XCTAssertEqual(pairing.status, 0, pairing.stderr)
        let pairCode = pairing.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertNotNil(pairCode.range(of: "^[A-Z0-9]{4}-[A-Z0-9]{4}$", options: .regularExpression), pairCode)
        let paired = try await sim.enterPairingCode(phone: "15557070708", code: pairCode)
        XCTAssertEqual(paired.user, "15557070708")
        let badPhone = try await cli("devices", "pair-code", "sales-2", "--phone", "12")
        XCTAssertEqual(badPhone.status, 1)
        XCTAssertFalse(badPhone.stderr.isEmpty)

        let deleted = try await cli("devices", "delete", "sales-1")
        XCTAssertEqual(deleted.status, 0, deleted.stderr)
        let after = try await cli("devices", "list", "--json")
        XCTAssertEqual((jsonObject(after.stdout)?["devices"] as? [[String: Any]])?.compactMap { $0["id"] as? String }, ["sales-2"])
        let deletedAgain = try await cli("devices", "delete", "sales-1")
        XCTAssertEqual(deletedAgain.status, 1)
        XCTAssertTrue(deletedAgain.stderr.contains("DEVICE_NOT_FOUND"), deletedAgain.stderr)

        let stopped = await serve.stop()
        XCTAssertEqual(stopped, 0, serve.stderr.value)
        await sim.shutdown()
        try? FileManager.default.removeItem(atPath: dataDir)
    }

    /// Reads the half-block drawing back into modules (true = dark), dropping the
    /// 2-module light border: light modules are the drawn halves.
    static func modules(fromDrawing lines: [String]) throws -> [[Bool]] {
        var rows: [[Bool]] = []
        for line in lines {
            var top: [Bool] = [], bottom: [Bool] = []
            for ch in line {
                let (t, b): (Bool, Bool) = switch ch {
                case "█": (false, false)
                case "▀": (false, true)
                case "▄": (true, false)
                case " ": (true, true)
                default: throw XCTestError(.failureWhileWaiting, userInfo: [NSLocalizedDescriptionKey: "unexpected \(ch)"])
                }
                top.append(t)
                bottom.append(b)
            }
            rows.append(top)
            rows.append(bottom)
        }
        let width = rows.first?.count ?? 0
        rows = Array(rows.prefix(width)) // an odd size leaves one extra border row
        XCTAssertTrue(rows.allSatisfy { $0.count == width })
        let border = 2
        for (y, row) in rows.enumerated() {
            for (x, dark) in row.enumerated() where y < border || y >= width - border || x < border || x >= width - border {
                XCTAssertFalse(dark, "the border must be light at \(x),\(y)")
            }
        }
        return rows[border..<(width - border)].map { Array($0[border..<(width - border)]) }
    }
}
