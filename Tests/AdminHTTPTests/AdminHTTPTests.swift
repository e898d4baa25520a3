import AdminHTTP
import Bridge
import BridgeStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import WAClient
import WASim
import XCTest

/// A simulator, a data folder, a device manager and the admin app over them.
struct AdminHarness {
    let sim: WASim
    let dataDir: URL
    let manager: DeviceManager
    let token: String?

    static func start(token: String? = nil, maxBody: Int = 16 * 1024,
                      sim tweak: (inout WASim.Configuration) -> Void = { _ in }) async throws -> AdminHarness {
        var configuration = WASim.Configuration()
        tweak(&configuration)
        let sim = try WASim(configuration: configuration)
        try await sim.start()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("wabridge-admin-\(UUID().uuidString)")
        let data = dir.appendingPathComponent("data")
        let manager = try await makeManager(sim: sim, dataDir: data)
        return AdminHarness(sim: sim, dataDir: data, manager: manager, token: token)
    }

    static func makeManager(sim: WASim, dataDir: URL) async throws -> DeviceManager {
        var client = WAClientConfiguration.local(endpoint: await sim.endpoint, noiseRoot: sim.rootPublicKey)
        client.keepalive = KeepalivePolicy(minInterval: .seconds(5), maxInterval: .seconds(5), timeout: .seconds(5))
        let store = try BridgeStore(configuration: .init(dataDirectory: dataDir))
        let m = DeviceManager(store: store, configuration: .init(client: client, reconnectSpread: .milliseconds(200),
                                                                  qrTimeout: .seconds(10)))
        try await m.start()
        return m
    }

    func app(manager: DeviceManager? = nil, maxBody: Int = 16 * 1024) -> some ApplicationProtocol {
        Application(router: AdminAPI.router(manager: manager ?? self.manager,
                                            options: .init(token: token, maxBodySize: maxBody)),
                    configuration: .init(address: .hostname("127.0.0.1", port: 0)))
    }

    func shutdown() async {
        await manager.shutdown()
        await sim.shutdown()
        try? FileManager.default.removeItem(at: dataDir.deletingLastPathComponent())
    }
}

/// One answer: status, raw body and the body as JSON (if it is JSON).
struct Answer {
    let status: Int
    let body: Data
    let contentType: String?
    var json: Any? { try? JSONSerialization.jsonObject(with: body) }
    var object: [String: Any] { json as? [String: Any] ?? [:] }
    var errorCode: String? { (object["error"] as? [String: Any])?["code"] as? String }
}

/// Every answer the tests saw, for the OpenAPI check.
actor AnswerLog {
    static let shared = AnswerLog()
    var entries: [(method: String, route: String, answer: Answer)] = []
    func add(_ m: String, _ r: String, _ a: Answer) { entries.append((m, r, a)) }
}

func call(_ client: any TestClientProtocol, _ method: HTTPRequest.Method, _ path: String,
          token: String? = nil, device: String? = nil, json: String? = nil, raw: Data? = nil,
          route: String? = nil) async throws -> Answer {
    var headers = HTTPFields()
    if let token { headers[.authorization] = "Bearer \(token)" }
    if let device { headers[HTTPField.Name("X-Device-Id")!] = device }
    var body: ByteBuffer?
    if let json {
        headers[.contentType] = "application/json"
        body = ByteBuffer(string: json)
    }
    if let raw { body = ByteBuffer(bytes: raw) }
    let r = try await client.execute(uri: path, method: method, headers: headers, body: body)
    let a = Answer(status: Int(r.status.code), body: Data(r.body.readableBytesView), contentType: r.headers[.contentType])
    XCTAssertNotEqual(a.status, 500, "\(method) \(path) gave a 500: \(String(decoding: a.body, as: UTF8.self))")
    if a.status >= 400 {
        XCTAssertNotNil(a.errorCode, "\(method) \(path): error bodies carry error.code")
    }
    await AnswerLog.shared.add(method.rawValue, route ?? path, a)
    return a
}

func zbarDecode(_ png: Data) throws -> String {
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("qr-\(UUID().uuidString).png")
    try png.write(to: file)
    defer { try? FileManager.default.removeItem(at: file) }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/zbarimg")
    p.arguments = ["--quiet", "--raw", "-Sbinary", file.path]
    let out = Pipe()
    p.standardOutput = out
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    XCTAssertEqual(p.terminationStatus, 0, "zbarimg decodes the PNG")
    var s = String(decoding: data, as: UTF8.self)
    while s.hasSuffix("\n") { s.removeLast() }
    return s
}

final class AdminHTTPTests: XCTestCase {
    func testQRLoginThroughHTTPRestartLogoutUnlinkDelete() async throws {
        let h = try await AdminHarness.start()
        let sim = h.sim
        try await h.app().test(.live) { client in
            let created = try await call(client, .post, "/devices", json: #"{"id":"sales-1"}"#)
            XCTAssertEqual(created.status, 201)
            XCTAssertEqual(created.object["id"] as? String, "sales-1")
            XCTAssertEqual(created.object["state"] as? String, "disconnected")

            let qr = try await call(client, .post, "/devices/sales-1/login/qr", route: "/devices/{id}/login/qr")
            XCTAssertEqual(qr.status, 200)
            let qrText = try XCTUnwrap(qr.object["qr"] as? String)
            XCTAssertNotNil(qr.object["expiresAt"] as? String)
            let png = try await call(client, .get, "/devices/sales-1/login/qr.png", route: "/devices/{id}/login/qr.png")
            XCTAssertEqual(png.status, 200)
            XCTAssertEqual(png.contentType, "image/png")
            XCTAssertEqual(try zbarDecode(png.body), qrText, "the PNG decodes to the QR string")

            let page = try await call(client, .get, "/devices/sales-1/page", route: "/devices/{id}/page")
            XCTAssertEqual(page.status, 200)
            XCTAssertTrue(String(decoding: page.body, as: UTF8.self).contains("login/qr.png"))

            await sim.createPhone(number: "15553030303")
            let jid = try await sim.scanQR(phone: "15553030303", qr: qrText)
            try await h.manager.waitForState("sales-1", .connected, timeout: .seconds(15))
            let got = try await call(client, .get, "/devices/sales-1", route: "/devices/{id}")
            XCTAssertEqual(got.object["state"] as? String, "connected")
            XCTAssertEqual(got.object["jid"] as? String, jid.description)
            let again = try await call(client, .post, "/devices/sales-1/login/qr", route: "/devices/{id}/login/qr")
            XCTAssertEqual(again.status, 409)
            XCTAssertEqual(again.errorCode, "ALREADY_LOGGED_IN")

            let metrics = try await call(client, .get, "/metrics")
            let text = String(decoding: metrics.body, as: UTF8.self)
            XCTAssertTrue(text.contains(#"wabridge_devices{state="connected"} 1"#), text)
            XCTAssertTrue(text.contains(#"wabridge_admin_errors_total{code="ALREADY_LOGGED_IN"} 1"#), text)

            // Restart: a new manager on the same folder reconnects from disk.
            await h.manager.shutdown()
            let m2 = try await AdminHarness.makeManager(sim: sim, dataDir: h.dataDir)
            try await m2.waitForState("sales-1", .connected, timeout: .seconds(15))
            let online = await sim.isOnline(jid)
            XCTAssertTrue(online)

            // Unlink from the phone → logged_out, keys gone, slot kept.
            await sim.unlink(device: jid)
            try await m2.waitForState("sales-1", .loggedOut, timeout: .seconds(15))
            let keys = try await m2.store.device(DeviceID("sales-1")).keys.loadDevice()
            XCTAssertNil(keys)
            await m2.shutdown()
        }
        // Logout and delete over HTTP, on the restarted manager.
        let m3 = try await AdminHarness.makeManager(sim: sim, dataDir: h.dataDir)
        try await h.app(manager: m3).test(.live) { client in
            let slot = try await call(client, .get, "/devices/sales-1", route: "/devices/{id}")
            XCTAssertEqual(slot.object["state"] as? String, "logged_out")
            let out = try await call(client, .post, "/devices/sales-1/logout", route: "/devices/{id}/logout")
            XCTAssertEqual(out.status, 200)
            XCTAssertEqual(out.object["state"] as? String, "logged_out")
            let rc = try await call(client, .post, "/devices/sales-1/reconnect", route: "/devices/{id}/reconnect")
            XCTAssertEqual(rc.status, 409)
            let folder = h.dataDir.appendingPathComponent("devices/sales-1")
            XCTAssertTrue(FileManager.default.fileExists(atPath: folder.path))
            let del = try await call(client, .delete, "/devices/sales-1", route: "/devices/{id}")
            XCTAssertEqual(del.status, 204)
            XCTAssertFalse(FileManager.default.fileExists(atPath: folder.path), "delete removes the folder")
            let gone = try await call(client, .get, "/devices/sales-1", route: "/devices/{id}")
            XCTAssertEqual(gone.status, 404)
            XCTAssertEqual(gone.errorCode, "DEVICE_NOT_FOUND")
        }
        await m3.shutdown()
        await h.shutdown()
    }

    func testPairingCodeThroughHTTPAndShortcuts() async throws {
        let h = try await AdminHarness.start()
        let sim = h.sim
        try await h.app().test(.live) { client in
            _ = try await call(client, .post, "/devices", json: #"{"id":"code-1"}"#)
            for bad in ["abc", "0123", "+1 (555)", "12345678901234567890"] {
                let r = try await call(client, .post, "/login/pair-code", json: "{\"phone\":\"\(bad)\"}")
                XCTAssertEqual(r.status, 422, bad)
                XCTAssertEqual(r.errorCode, "INVALID_PHONE_NUMBER")
            }
            await sim.createPhone(number: "15554040404")
            let r = try await call(client, .post, "/devices/code-1/login/pair-code", json: #"{"phone":"+15554040404"}"#,
                                   route: "/devices/{id}/login/pair-code")
            XCTAssertEqual(r.status, 200)
            let code = try XCTUnwrap(r.object["code"] as? String)
            XCTAssertNotNil(code.range(of: #"^[A-Z0-9]{4}-[A-Z0-9]{4}$"#, options: .regularExpression))
            _ = try await sim.enterPairingCode(phone: "15554040404", code: code)
            try await h.manager.waitForState("code-1", .connected, timeout: .seconds(15))
            let d = try await call(client, .get, "/device")
            XCTAssertEqual(d.status, 200)
            XCTAssertEqual(d.object["state"] as? String, "connected")
            let rc = try await call(client, .post, "/reconnect", device: "code-1")
            XCTAssertEqual(rc.status, 202)
            try await h.manager.waitForState("code-1", .connected, timeout: .seconds(15))
        }
        await h.shutdown()
    }

    func testDefaultDeviceRuleOverHTTP() async throws {
        let h = try await AdminHarness.start()
        try await h.app().test(.live) { client in
            var r = try await call(client, .get, "/device")
            XCTAssertEqual(r.status, 404)
            XCTAssertEqual(r.errorCode, "DEVICE_NOT_FOUND")
            r = try await call(client, .get, "/device", device: "a")
            XCTAssertEqual(r.errorCode, "DEVICE_NOT_FOUND")
            _ = try await call(client, .post, "/devices", json: #"{"id":"a"}"#)
            r = try await call(client, .get, "/device")
            XCTAssertEqual(r.status, 200)
            XCTAssertEqual(r.object["id"] as? String, "a")
            r = try await call(client, .get, "/device", device: "a")
            XCTAssertEqual(r.object["id"] as? String, "a")
            r = try await call(client, .get, "/device", device: "b")
            XCTAssertEqual(r.status, 404)
            r = try await call(client, .get, "/device", device: "bad id!")
            XCTAssertEqual(r.status, 400)
            XCTAssertEqual(r.errorCode, "DEVICE_ID_INVALID")
            _ = try await call(client, .post, "/devices", json: #"{"id":"b"}"#)
            r = try await call(client, .get, "/device")
            XCTAssertEqual(r.status, 400)
            XCTAssertEqual(r.errorCode, "DEVICE_ID_REQUIRED")
            r = try await call(client, .post, "/login/qr")
            XCTAssertEqual(r.errorCode, "DEVICE_ID_REQUIRED")
            r = try await call(client, .get, "/device", device: "b")
            XCTAssertEqual(r.object["id"] as? String, "b")
            r = try await call(client, .get, "/device", device: "c")
            XCTAssertEqual(r.errorCode, "DEVICE_NOT_FOUND")
            let list = try await call(client, .get, "/devices")
            XCTAssertEqual((list.object["devices"] as? [Any])?.count, 2)
        }
        await h.shutdown()
    }

    func testAuth() async throws {
        let h = try await AdminHarness.start(token: "s3cret-token")
        try await h.app().test(.live) { client in
            var r = try await call(client, .get, "/devices")
            XCTAssertEqual(r.status, 401)
            XCTAssertEqual(r.errorCode, "UNAUTHORIZED")
            r = try await call(client, .get, "/devices", token: "wrong")
            XCTAssertEqual(r.status, 401)
            r = try await call(client, .get, "/devices", token: "s3cret-toke")
            XCTAssertEqual(r.status, 401)
            r = try await call(client, .post, "/devices", json: #"{"id":"x"}"#)
            XCTAssertEqual(r.status, 401)
            r = try await call(client, .get, "/metrics")
            XCTAssertEqual(r.status, 401)
            r = try await call(client, .get, "/devices", token: "s3cret-token")
            XCTAssertEqual(r.status, 200)
            r = try await call(client, .get, "/devices?token=s3cret-token", route: "/devices")
            XCTAssertEqual(r.status, 200)
            r = try await call(client, .get, "/healthz")
            XCTAssertEqual(r.status, 200)
            r = try await call(client, .get, "/readyz")
            XCTAssertEqual(r.status, 200)
        }
        XCTAssertThrowsError(try AdminHTTPService(manager: h.manager, host: "0.0.0.0", port: 0,
                                                  options: .init(token: nil), logger: .init(label: "t")))
        await h.shutdown()
    }

    func testBadInputNeverA500() async throws {
        let h = try await AdminHarness.start()
        try await h.app(maxBody: 1024).test(.live) { client in
            var r = try await call(client, .post, "/devices", json: #"{"id":"bad id"}"#)
            XCTAssertEqual(r.status, 400)
            XCTAssertEqual(r.errorCode, "DEVICE_ID_INVALID")
            r = try await call(client, .post, "/devices", json: "{\"id\":\"\(String(repeating: "x", count: 65))\"}")
            XCTAssertEqual(r.errorCode, "DEVICE_ID_INVALID")
            r = try await call(client, .post, "/devices", json: #"{"id": 12"#)
            XCTAssertEqual(r.status, 400)
            XCTAssertEqual(r.errorCode, "BAD_JSON")
            r = try await call(client, .post, "/devices", json: #"{"id": 12}"#)
            XCTAssertEqual(r.errorCode, "BAD_JSON")
            r = try await call(client, .post, "/devices", json: "[]")
            XCTAssertEqual(r.errorCode, "BAD_JSON")
            r = try await call(client, .post, "/devices", raw: Data(repeating: 0x7B, count: 4096))
            XCTAssertEqual(r.status, 413)
            XCTAssertEqual(r.errorCode, "PAYLOAD_TOO_LARGE")
            r = try await call(client, .post, "/devices", json: #"{"id":"ok-1"}"#)
            XCTAssertEqual(r.status, 201)
            r = try await call(client, .post, "/devices", json: #"{"id":"ok-1"}"#)
            XCTAssertEqual(r.status, 409)
            XCTAssertEqual(r.errorCode, "DEVICE_EXISTS")
            r = try await call(client, .post, "/devices")
            XCTAssertEqual(r.status, 201, "an empty body generates an ID")
            r = try await call(client, .get, "/devices/nope", route: "/devices/{id}")
            XCTAssertEqual(r.status, 404)
            XCTAssertEqual(r.errorCode, "DEVICE_NOT_FOUND")
            r = try await call(client, .delete, "/devices/nope", route: "/devices/{id}")
            XCTAssertEqual(r.status, 404)
            r = try await call(client, .post, "/devices/nope/login/qr", route: "/devices/{id}/login/qr")
            XCTAssertEqual(r.status, 404)
            r = try await call(client, .get, "/devices/ok-1/login/qr.png", route: "/devices/{id}/login/qr.png")
            XCTAssertEqual(r.status, 404, "no QR showing")
            r = try await call(client, .post, "/devices/ok-1/login/pair-code", json: #"{"phone":"12ab"}"#,
                               route: "/devices/{id}/login/pair-code")
            XCTAssertEqual(r.status, 422)
            XCTAssertEqual(r.errorCode, "INVALID_PHONE_NUMBER")
            r = try await call(client, .post, "/devices/ok-1/login/pair-code", json: #"{"number":"15551234567"}"#,
                               route: "/devices/{id}/login/pair-code")
            XCTAssertEqual(r.errorCode, "BAD_JSON")
            r = try await call(client, .post, "/devices/ok-1/login/pair-code", route: "/devices/{id}/login/pair-code")
            XCTAssertEqual(r.status, 400)
            r = try await call(client, .post, "/devices/ok-1/login/pair-code", raw: Data(repeating: 0x20, count: 2000),
                               route: "/devices/{id}/login/pair-code")
            XCTAssertEqual(r.status, 413)
            r = try await call(client, .get, "/nothing-here", route: "-")
            XCTAssertEqual(r.status, 404)
            r = try await call(client, .get, "/devices/%2e%2e/page", route: "-")
            XCTAssertTrue([400, 404].contains(r.status))
        }
        await h.shutdown()
    }

    /// The device page, rendered by headless Chromium, shows the QR code that is showing now:
    /// the screenshot decodes (zbarimg) to the same string the API returned.
    func testDevicePageRendersTheQRInHeadlessChromium() async throws {
        let h = try await AdminHarness.start(token: "page-token")
        try await h.app().test(.live) { client in
            let port = try XCTUnwrap(client.port)
            _ = try await call(client, .post, "/devices", token: "page-token", json: #"{"id":"page-1"}"#)
            let qr = try await call(client, .post, "/devices/page-1/login/qr", token: "page-token",
                                    route: "/devices/{id}/login/qr")
            let text = try XCTUnwrap(qr.object["qr"] as? String)
            let shot = FileManager.default.temporaryDirectory.appendingPathComponent("page-\(UUID().uuidString).png")
            defer { try? FileManager.default.removeItem(at: shot) }
            let profile = FileManager.default.temporaryDirectory.appendingPathComponent("chromium-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: profile) }
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/chromium")
            p.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
                           "--user-data-dir=\(profile.path)", "--window-size=600,900", "--virtual-time-budget=5000",
                           "--screenshot=\(shot.path)", "http://127.0.0.1:\(port)/devices/page-1/page?token=page-token"]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            let status: Int32 = try await withCheckedThrowingContinuation { c in
                p.terminationHandler = { c.resume(returning: $0.terminationStatus) }
                do { try p.run() } catch { c.resume(throwing: error) }
            }
            XCTAssertEqual(status, 0, "chromium ran")
            let png = try Data(contentsOf: shot)
            XCTAssertEqual(try zbarDecode(png), text, "the page shows the current QR")
        }
        await h.shutdown()
    }
}
