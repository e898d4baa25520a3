import Foundation
import WATestSupport
import XCTest

/// Checks published events against `schemas/` with the reference validator
/// (Python jsonschema, draft 2020-12), not with our own code.
final class SchemaChecker {
    private let peer: PythonPeer

    init() throws {
        peer = try PythonPeer(venv: "jsonschema", script: "schema_validate.py", timeout: 600)
    }

    /// nil when `instance` (JSON bytes) is valid against the schema at `schema` (repository-relative).
    func error(_ instance: Data, schema: String) throws -> String? {
        let instanceJSON = String(decoding: instance, as: UTF8.self)
        let line = #"{"schema":"# + "\"\(schema)\"" + #","instance":"# + instanceJSON + "}\n"
        try peer.write(Data(line.utf8))
        let answer = try peer.readLine()
        guard let object = try JSONSerialization.jsonObject(with: Data(answer.utf8)) as? [String: Any] else {
            throw PythonPeer.Failure(description: "validator answered: \(answer)")
        }
        if object["ok"] as? Bool == true { return nil }
        return object["error"] as? String ?? answer
    }

    /// Every event: the AMQP properties mirror it, the envelope and its `data` validate.
    func assertValid(events: [Collector.Message], file: StaticString = #filePath, line: UInt = #line) throws {
        for e in events {
            let text = String(decoding: e.body, as: UTF8.self)
            guard let json = e.json, let type = json["type"] as? String,
                  type.hasPrefix("wabridge."), type.hasSuffix(".v1") else {
                XCTFail("not a wabridge CloudEvent: \(text.prefix(300))", file: file, line: line)
                continue
            }
            XCTAssertEqual(e.properties.contentType, "application/cloudevents+json", file: file, line: line)
            XCTAssertEqual(e.properties.messageID, json["id"] as? String, file: file, line: line)
            XCTAssertEqual(e.properties.type, type, file: file, line: line)
            XCTAssertEqual(e.properties.appID, "wabridge", file: file, line: line)
            XCTAssertEqual(e.properties.deliveryMode, .persistent, file: file, line: line)
            let name = String(type.dropFirst("wabridge.".count).dropLast(".v1".count))
            XCTAssertEqual(e.routingKey.split(separator: ".", maxSplits: 1).last.map(String.init), name,
                           "routing key \(e.routingKey) vs type \(type)", file: file, line: line)
            if let problem = try error(Data(e.body), schema: "schemas/events/cloudevent.json") {
                XCTFail("\(type) envelope: \(problem): \(text.prefix(300))", file: file, line: line)
            }
            let data = try JSONSerialization.data(withJSONObject: json["data"] ?? NSNull(), options: [.fragmentsAllowed])
            if let problem = try error(data, schema: "schemas/events/\(name).json") {
                XCTFail("\(type) data: \(problem): \(text.prefix(300))", file: file, line: line)
            }
        }
    }

    deinit { try? peer.finish() }
}
