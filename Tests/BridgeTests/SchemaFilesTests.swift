import Bridge
import Foundation
import XCTest

/// `schemas/asyncapi.yaml` and `schemas/events/*.json` are consistent with the code
/// and with each other.
final class SchemaFilesTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static var schemas: URL { root.appendingPathComponent("schemas") }

    /// The command schemas the commands branch adds, by exactly these names; the
    /// AsyncAPI document may reference them before they exist here.
    static let commandSchemas: Set<String> = [
        "commands/send.text.json", "commands/send.reaction.json", "commands/message.revoke.json",
        "commands/message.edit.json", "commands/message.read.json", "commands/device.logout.json",
        "commands/device.reconnect.json",
    ]

    /// Every `$ref` string in a JSON value.
    static func refs(_ value: Any) -> [String] {
        if let o = value as? [String: Any] {
            return (o["$ref"] as? String).map { [$0] }.map { $0 + o.values.flatMap(refs) } ?? o.values.flatMap(refs)
        }
        if let a = value as? [Any] { return a.flatMap(refs) }
        return []
    }

    func testAsyncAPIParsesAndReferencesOnlyWhatExists() throws {
        // The file is YAML in its JSON-compatible flow style (no PyYAML or Yams here), so
        // a JSON parser reads exactly what a YAML 1.2 parser reads.
        let data = try Data(contentsOf: Self.schemas.appendingPathComponent("asyncapi.yaml"))
        let doc = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        XCTAssertEqual(doc["asyncapi"] as? String, "3.0.0")
        let channels = try XCTUnwrap(doc["channels"] as? [String: Any])
        let operations = try XCTUnwrap(doc["operations"] as? [String: Any])
        let messages = try XCTUnwrap((doc["components"] as? [String: Any])?["messages"] as? [String: Any])

        // Every event type has its channel on `<p>.events` and a publish operation.
        for t in EventType.allCases {
            let key = "event_" + t.rawValue.replacingOccurrences(of: ".", with: "_")
            let channel = try XCTUnwrap(channels[key] as? [String: Any], "channel for \(t.rawValue)")
            XCTAssertEqual(channel["address"] as? String, "{deviceId}.\(t.rawValue)")
            let amqp = (channel["bindings"] as? [String: Any])?["amqp"] as? [String: Any]
            XCTAssertEqual((amqp?["exchange"] as? [String: Any])?["name"] as? String, "wa.events")
            XCTAssertEqual((amqp?["exchange"] as? [String: Any])?["type"] as? String, "topic")
            XCTAssertNotNil(operations["publish_" + key.dropFirst("event_".count)], "operation for \(t.rawValue)")
            XCTAssertTrue(FileManager.default.fileExists(
                atPath: Self.schemas.appendingPathComponent("events/\(t.rawValue).json").path), "schema of \(t.rawValue)")
        }
        for name in ["commands", "deviceCommands", "unroutedCommands", "results", "dead"] {
            XCTAssertNotNil(channels[name], name)
        }
        for op in operations.values {
            let action = (op as? [String: Any])?["action"] as? String
            XCTAssertTrue(action == "send" || action == "receive", "\(String(describing: action))")
        }
        XCTAssertFalse(messages.isEmpty)

        // References: inside the document they resolve; outside, the file exists (the
        // command schemas excepted, listed by name).
        var commandRefs: Set<String> = []
        let all = Self.refs(doc)
        XCTAssertGreaterThan(all.count, 40)
        for ref in all {
            if ref.hasPrefix("#/") {
                var node: Any? = doc
                for part in ref.dropFirst(2).split(separator: "/") { node = (node as? [String: Any])?[String(part)] }
                XCTAssertNotNil(node, "\(ref) resolves")
            } else {
                let path = String(ref.split(separator: "#").first ?? "")
                if path.hasPrefix("commands/") {
                    XCTAssertTrue(Self.commandSchemas.contains(path), "\(path) is one of the listed command schemas")
                    commandRefs.insert(path)
                } else {
                    XCTAssertTrue(FileManager.default.fileExists(atPath: Self.schemas.appendingPathComponent(path).path),
                                  "\(ref) exists")
                }
            }
        }
        XCTAssertEqual(commandRefs, Self.commandSchemas, "every command kind is described")
    }

    /// The event schemas are valid draft 2020-12 (reference validator) and refuse what they must.
    func testEventSchemasAreValidAndStrict() throws {
        let python = Self.root.appendingPathComponent(".venv-peers/jsonschema/bin/python").path
        let script = """
            import json, sys, glob
            from jsonschema import Draft202012Validator as V, FormatChecker
            root = sys.argv[1]
            for f in sorted(glob.glob(root + "/schemas/events/*.json")):
                V.check_schema(json.load(open(f)))
            def ok(name, value):
                return V(json.load(open(f"{root}/schemas/events/{name}.json")), format_checker=FormatChecker()).is_valid(value)
            assert ok("connection.state", {"from": "connecting", "to": "connected", "reason": "logged_in"})
            assert not ok("connection.state", {"from": "connecting", "to": "sleeping", "reason": "x"})
            assert not ok("message.received", {"message_id": "1", "chat": "1@s.whatsapp.net", "sender": "1@s.whatsapp.net",
                "from_me": False, "is_group": False, "timestamp": "2026-11-25T12:00:00.000Z", "push_name": None, "kind": "text"})
            assert not ok("message.status", {"message_id": "1", "chat": "1@s.whatsapp.net", "status": "failed"})
            assert not ok("login.pair_code", {"code": "abc"})
            assert not ok("login.qr", {"code": "x", "expires_at": "tomorrow"})
            print("ok")
            """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = ["-c", script, Self.root.path]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, text)
        XCTAssertEqual(text, "ok\n")
    }
}
