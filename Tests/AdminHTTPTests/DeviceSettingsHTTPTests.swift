import AdminHTTP
import Bridge
import BridgeStore
import Foundation
import HummingbirdTesting
import XCTest

/// `GET`/`PATCH /devices/{id}/settings`: per-device history settings over the worker's defaults,
/// as a JSON merge patch, kept across a worker restart, every bad patch refused with a code.
final class DeviceSettingsHTTPTests: XCTestCase {
    static func history(_ a: Answer) -> [String: Any] { a.object["history"] as? [String: Any] ?? [:] }
    static func overrides(_ a: Answer) -> [String: Any] {
        (a.object["overrides"] as? [String: Any])?["history"] as? [String: Any] ?? [:]
    }

    func testSettingsArePatchedKeptAndRefusedWithCodes() async throws {
        let h = try await AdminHarness.start()
        try await h.app().test(.live) { client in
            _ = try await call(client, .post, "/devices", json: #"{"id":"set-1"}"#)
            var r = try await call(client, .get, "/devices/set-1/settings", route: "/devices/{id}/settings")
            XCTAssertEqual(r.status, 200)
            XCTAssertEqual(Self.history(r)["days"] as? Int, 7, "the worker's defaults")
            XCTAssertEqual(Self.history(r)["max_messages"] as? Int, 1_000)
            XCTAssertEqual(Self.history(r)["events"] as? Bool, false)
            XCTAssertTrue(Self.overrides(r).isEmpty)

            r = try await call(client, .patch, "/devices/set-1/settings", json: #"{"history":{"events":true,"days":0}}"#,
                               route: "/devices/{id}/settings")
            XCTAssertEqual(r.status, 200)
            XCTAssertEqual(Self.history(r)["events"] as? Bool, true)
            XCTAssertEqual(Self.history(r)["days"] as? Int, 0, "0: no age bound")
            XCTAssertEqual(Self.history(r)["max_messages"] as? Int, 1_000, "untouched fields keep the default")
            XCTAssertEqual(Set(Self.overrides(r).keys), ["events", "days"])

            // A field not named is left alone; null goes back to the worker's default.
            r = try await call(client, .patch, "/settings", json: #"{"history":{"max_messages":50,"days":null}}"#)
            XCTAssertEqual(r.status, 200, "the shortcut follows the default-device rule")
            XCTAssertEqual(Self.history(r)["days"] as? Int, 7)
            XCTAssertEqual(Self.history(r)["max_messages"] as? Int, 50)
            XCTAssertEqual(Self.history(r)["events"] as? Bool, true)
            XCTAssertEqual(Set(Self.overrides(r).keys), ["events", "max_messages"])

            for (body, what) in [
                (#"{"histroy":{"days":1}}"#, "a misspelt section"),
                (#"{"history":{"day":1}}"#, "a misspelt field"),
                (#"{"history":{"days":-1}}"#, "out of range"),
                (#"{"history":{"days":1.5}}"#, "not an integer"),
                (#"{"history":{"days":"7"}}"#, "a string"),
                (#"{"history":{"events":1}}"#, "a number for a boolean"),
                (#"{"history":{"max_messages":true}}"#, "a boolean for a number"),
                (#"{"history":[1]}"#, "not an object"),
                (#"[1]"#, "not an object"),
                ("{", "not JSON"),
                ("", "empty"),
            ] {
                r = try await call(client, .patch, "/devices/set-1/settings", json: body, route: "/devices/{id}/settings")
                XCTAssertEqual(r.status, 400, what)
                XCTAssertEqual(r.errorCode, "INVALID_SETTINGS", what)
            }
            r = try await call(client, .patch, "/devices/nobody/settings", json: #"{"history":null}"#,
                               route: "/devices/{id}/settings")
            XCTAssertEqual(r.errorCode, "DEVICE_NOT_FOUND")
            r = try await call(client, .get, "/devices/set-1/settings", route: "/devices/{id}/settings")
            XCTAssertEqual(Self.history(r)["max_messages"] as? Int, 50, "refused patches changed nothing")
        }
        // A worker restart reads them back from the registry.
        await h.manager.shutdown()
        let again = try await AdminHarness.makeManager(sim: h.sim, dataDir: h.dataDir)
        let view = try await again.settings("set-1")
        XCTAssertEqual(view.stored, DeviceSettings(history: .init(maxMessages: 50, events: true)))
        XCTAssertEqual(view.history.bounds.maxMessages, 50)
        XCTAssertEqual(view.history.bounds.maxAge, 7 * 86_400)
        XCTAssertTrue(view.history.publishMessages)
        try await h.app(manager: again).test(.live) { client in
            let r = try await call(client, .patch, "/devices/set-1/settings", json: #"{"history":null}"#,
                                   route: "/devices/{id}/settings")
            XCTAssertTrue(Self.overrides(r).isEmpty, "null on the section clears every override")
            XCTAssertEqual(Self.history(r)["max_messages"] as? Int, 1_000)
        }
        await again.shutdown()
        await h.shutdown()
    }
}
