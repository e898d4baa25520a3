import Foundation
import HummingbirdTesting
import XCTest

/// A small OpenAPI 3.1 checker: finds the operation for (method, route), requires the
/// status to be documented, and checks JSON bodies against the response schema
/// (`$ref`, `type` incl. type lists, `properties`, `required`, `items`, `enum`, `pattern`).
struct OpenAPIChecker {
    let spec: [String: Any]

    init() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("schemas/admin-openapi.yaml")
        // The file is YAML in its JSON-compatible flow style, so JSONSerialization reads it.
        spec = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    }

    func resolve(_ node: [String: Any]) -> [String: Any] {
        guard let ref = node["$ref"] as? String else { return node }
        var cur: Any = spec
        for part in ref.dropFirst(2).split(separator: "/") { cur = (cur as? [String: Any])?[String(part)] ?? [:] }
        return resolve(cur as? [String: Any] ?? [:])
    }

    /// Problems with one answer (empty = conforms).
    func check(method: String, route: String, status: Int, contentType: String?, body: Data) -> [String] {
        guard let path = (spec["paths"] as? [String: Any])?[route] as? [String: Any] else { return ["\(route): not in the spec"] }
        guard let op = path[method.lowercased()] as? [String: Any] else { return ["\(method) \(route): not in the spec"] }
        guard let responses = op["responses"] as? [String: Any],
              let r = (responses[String(status)] ?? responses["default"]) as? [String: Any] else {
            return ["\(method) \(route): status \(status) not documented"]
        }
        let response = resolve(r)
        guard let content = response["content"] as? [String: Any] else {
            return body.isEmpty ? [] : ["\(method) \(route) \(status): body where none is documented"]
        }
        let type = (contentType ?? "").split(separator: ";").first.map(String.init) ?? ""
        guard let media = content[type] as? [String: Any] else {
            return ["\(method) \(route) \(status): content type \(type) not documented (\(content.keys.sorted()))"]
        }
        guard type == "application/json", let schema = media["schema"] as? [String: Any] else { return [] }
        guard let json = try? JSONSerialization.jsonObject(with: body, options: [.fragmentsAllowed]) else {
            return ["\(method) \(route) \(status): body is not JSON"]
        }
        return validate(json, schema, at: "\(method) \(route) \(status) $")
    }

    func validate(_ value: Any, _ raw: [String: Any], at path: String) -> [String] {
        let schema = resolve(raw)
        var problems: [String] = []
        let types: [String] = (schema["type"] as? [String]) ?? ((schema["type"] as? String).map { [$0] } ?? [])
        if !types.isEmpty && !types.contains(where: { Self.matches(value, $0) }) {
            return ["\(path): expected \(types), got \(value)"]
        }
        if let allowed = schema["enum"] as? [String], let s = value as? String, !allowed.contains(s) {
            problems.append("\(path): \(s) not in \(allowed)")
        }
        if let pattern = schema["pattern"] as? String, let s = value as? String,
           s.range(of: pattern, options: .regularExpression) == nil {
            problems.append("\(path): \(s) does not match \(pattern)")
        }
        if let object = value as? [String: Any] {
            for name in schema["required"] as? [String] ?? [] where object[name] == nil {
                problems.append("\(path).\(name): required")
            }
            for (name, sub) in schema["properties"] as? [String: Any] ?? [:] {
                if let v = object[name], let sub = sub as? [String: Any] {
                    problems += validate(v, sub, at: "\(path).\(name)")
                }
            }
        }
        if let array = value as? [Any], let items = schema["items"] as? [String: Any] {
            for (i, v) in array.enumerated() { problems += validate(v, items, at: "\(path)[\(i)]") }
        }
        return problems
    }

    static func matches(_ v: Any, _ type: String) -> Bool {
        switch type {
        case "null": return v is NSNull
        case "string": return v is String
        case "object": return v is [String: Any]
        case "array": return v is [Any]
        case "boolean": return v is Bool
        case "integer": return (v as? NSNumber).map { $0.doubleValue == $0.doubleValue.rounded() } ?? false
        case "number": return v is NSNumber
        default: return true
        }
    }
}

final class OpenAPIConformanceTests: XCTestCase {
    /// The checker itself finds wrong shapes, undocumented statuses and unknown routes.
    func testCheckerCatchesMismatches() throws {
        let c = try OpenAPIChecker()
        let json = "application/json"
        XCTAssertEqual(c.check(method: "GET", route: "/devices/{id}", status: 200, contentType: json,
                               body: Data(#"{"id":"a","state":"connected","pushName":"","createdAt":"x","updatedAt":"y"}"#.utf8)), [])
        XCTAssertFalse(c.check(method: "GET", route: "/devices/{id}", status: 200, contentType: json,
                               body: Data(#"{"id":"a","state":"weird","pushName":"","createdAt":"x","updatedAt":"y"}"#.utf8)).isEmpty)
        XCTAssertFalse(c.check(method: "GET", route: "/devices/{id}", status: 200, contentType: json,
                               body: Data(#"{"id":"a"}"#.utf8)).isEmpty)
        XCTAssertFalse(c.check(method: "GET", route: "/devices/{id}", status: 418, contentType: json, body: Data()).isEmpty)
        XCTAssertFalse(c.check(method: "PUT", route: "/devices", status: 200, contentType: json, body: Data()).isEmpty)
        XCTAssertFalse(c.check(method: "GET", route: "/devices", status: 401, contentType: json,
                               body: Data(#"{"error":{"code":"NOPE","message":"m"}}"#.utf8)).isEmpty)
        XCTAssertFalse(c.check(method: "POST", route: "/login/pair-code", status: 200, contentType: json,
                               body: Data(#"{"code":"abc"}"#.utf8)).isEmpty)
    }

    /// Drives every endpoint (successes and errors) and checks each answer against the spec,
    /// along with every answer the other tests of this run recorded.
    func testRealResponsesMatchTheSpec() async throws {
        let checker = try OpenAPIChecker()
        let h = try await AdminHarness.start()
        let sim = h.sim
        try await h.app().test(.live) { client in
            _ = try await call(client, .get, "/healthz")
            _ = try await call(client, .get, "/readyz")
            _ = try await call(client, .get, "/metrics")
            _ = try await call(client, .get, "/devices")
            _ = try await call(client, .get, "/device")
            _ = try await call(client, .post, "/devices", json: #"{"id":"spec-1"}"#)
            _ = try await call(client, .post, "/devices", json: #"{"id":"spec-1"}"#)
            _ = try await call(client, .post, "/devices", json: #"{"id":"no good"}"#)
            _ = try await call(client, .get, "/device")
            _ = try await call(client, .get, "/devices/spec-1", route: "/devices/{id}")
            _ = try await call(client, .get, "/devices/spec-1/page", route: "/devices/{id}/page")
            _ = try await call(client, .get, "/devices/spec-1/settings", route: "/devices/{id}/settings")
            _ = try await call(client, .patch, "/devices/spec-1/settings", json: #"{"history":{"events":true}}"#,
                               route: "/devices/{id}/settings")
            _ = try await call(client, .patch, "/settings", json: #"{"history":{"days":"x"}}"#)
            _ = try await call(client, .get, "/settings")
            _ = try await call(client, .get, "/login/qr.png")
            _ = try await call(client, .post, "/reconnect")
            let qr = try await call(client, .post, "/login/qr")
            _ = try await call(client, .get, "/login/qr.png")
            await sim.createPhone(number: "15556060606")
            if let text = qr.object["qr"] as? String {
                _ = try await sim.scanQR(phone: "15556060606", qr: text)
                try await h.manager.waitForState("spec-1", .connected, timeout: .seconds(15))
            }
            _ = try await call(client, .post, "/devices/spec-1/login/pair-code", json: #"{"phone":"+15556060606"}"#,
                               route: "/devices/{id}/login/pair-code")
            _ = try await call(client, .post, "/login/pair-code", json: #"{"phone":"x"}"#)
            _ = try await call(client, .post, "/devices/spec-1/reconnect", route: "/devices/{id}/reconnect")
            _ = try await call(client, .post, "/logout")
            _ = try await call(client, .post, "/devices", json: "{")
            _ = try await call(client, .get, "/devices")
            _ = try await call(client, .delete, "/devices/spec-1", route: "/devices/{id}")
        }
        await h.shutdown()
        let entries = await AnswerLog.shared.entries
        var problems: [String] = []
        var checked = 0
        for e in entries where e.route != "-" {
            let route = e.route.split(separator: "?").first.map(String.init) ?? e.route
            problems += checker.check(method: e.method, route: route, status: e.answer.status,
                                      contentType: e.answer.contentType, body: e.answer.body)
            checked += 1
        }
        XCTAssertGreaterThanOrEqual(checked, 20)
        XCTAssertEqual(problems, [], problems.joined(separator: "\n"))
    }
}
