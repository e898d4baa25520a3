import AMQP
@testable import Bridge
import Foundation
import WABinary
import XCTest

/// The command schemas, our validator against Python's `jsonschema` (the
/// reference), the parser's refusal codes, recipients and the token bucket.
final class CommandSchemaTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    func testEmbeddedSchemasMatchTheFiles() throws {
        let dir = Self.root.appendingPathComponent("schemas/commands")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".json") }.sorted()
        XCTAssertEqual(files, CommandKind.allCases.map { "\($0.rawValue).json" }.sorted(), "one schema per kind")
        XCTAssertEqual(EmbeddedSchemas.commands.keys.sorted(), CommandKind.allCases.map(\.rawValue).sorted())
        for kind in CommandKind.allCases {
            let text = try String(contentsOf: dir.appendingPathComponent("\(kind.rawValue).json"), encoding: .utf8)
            XCTAssertEqual(EmbeddedSchemas.commands[kind.rawValue], String(text.dropLast(text.hasSuffix("\n") ? 1 : 0)),
                           "\(kind.rawValue): embedded copy differs from schemas/: run scripts/gen-schemas.sh")
        }
    }

    /// (kind, document, valid?) for every kind: the expectation is checked against both validators.
    static var corpus: [(String, JSONValue, Bool)] {
        let peer: JSONValue = "+15551234567"
        let jid: JSONValue = "15551234567@s.whatsapp.net"
        let long = String(repeating: "x", count: 65_537)
        var c: [(String, JSONValue, Bool)] = [
            ("send.text", ["id": "a", "kind": "send.text", "to": peer, "text": "hi"], true),
            ("send.text", ["kind": "send.text", "to": jid, "text": "hi"], true),
            ("send.text", ["id": "a", "kind": "send.text", "to": peer, "text": "hi", "reply_to": ["id": "3EB0AA", "sender": jid],
                           "mentions": [jid, peer]], true),
            ("send.text", ["id": "a", "kind": "send.text", "to": peer, "text": .string(String(repeating: "é", count: 65_536))], true),
            ("send.text", ["id": "a", "kind": "send.text", "to": peer, "text": ""], false),
            ("send.text", ["id": "a", "kind": "send.text", "to": peer, "text": .string(long)], false),
            ("send.text", ["id": "a", "kind": "send.text", "to": peer], false),
            ("send.text", ["id": "a", "kind": "send.text", "text": "hi"], false),
            ("send.text", ["id": "a", "kind": "send.text", "to": 15551234567, "text": "hi"], false),
            ("send.text", ["id": "a", "kind": "send.text", "to": peer, "text": "hi", "extra": true], false),
            ("send.text", ["id": "", "kind": "send.text", "to": peer, "text": "hi"], false),
            ("send.text", ["id": .string(String(repeating: "i", count: 129)), "kind": "send.text", "to": peer, "text": "hi"], false),
            ("send.text", ["id": 7, "kind": "send.text", "to": peer, "text": "hi"], false),
            ("send.text", ["id": "a", "kind": "send.reaction", "to": peer, "text": "hi"], false),
            ("send.text", ["id": "a", "kind": "send.text", "to": peer, "text": "hi", "reply_to": ["id": "3EB0 AA", "sender": jid]], false),
            ("send.text", ["id": "a", "kind": "send.text", "to": peer, "text": "hi", "reply_to": ["id": "3EB0AA"]], false),
            ("send.text", ["id": "a", "kind": "send.text", "to": peer, "text": "hi", "mentions": "x"], false),
            ("send.text", ["id": "a", "kind": "send.text", "to": peer, "text": "hi",
                           "mentions": .array(Array(repeating: peer, count: 257))], false),
            ("send.text", ["id": "a", "kind": "send.text", "to": peer, "text": "hi", "mentions": [3]], false),
            ("send.text", "not an object", false),
            ("send.reaction", ["id": "r", "kind": "send.reaction", "chat": peer, "message_id": "3EB0X", "emoji": "👍"], true),
            ("send.reaction", ["id": "r", "kind": "send.reaction", "chat": "1203@g.us", "message_id": "3EB0X", "emoji": "",
                               "sender": jid, "from_me": false], true),
            ("send.reaction", ["id": "r", "kind": "send.reaction", "chat": peer, "message_id": "3EB0X"], false),
            ("send.reaction", ["id": "r", "kind": "send.reaction", "chat": peer, "message_id": "3EB0X", "emoji": "👍", "from_me": 1], false),
            ("send.reaction", ["id": "r", "kind": "send.reaction", "chat": peer, "message_id": "", "emoji": "👍"], false),
            ("send.reaction", ["id": "r", "kind": "send.reaction", "chat": peer, "message_id": "3EB0X", "emoji": .string(String(repeating: "👍", count: 33))], false),
            ("message.revoke", ["id": "v", "kind": "message.revoke", "chat": peer, "message_id": "3EB0X"], true),
            ("message.revoke", ["id": "v", "kind": "message.revoke", "chat": peer], false),
            ("message.revoke", ["id": "v", "kind": "message.revoke", "chat": peer, "message_id": "3EB0X", "text": "no"], false),
            ("message.edit", ["id": "e", "kind": "message.edit", "chat": peer, "message_id": "3EB0X", "text": "new"], true),
            ("message.edit", ["id": "e", "kind": "message.edit", "chat": peer, "message_id": "3EB0X", "text": ""], false),
            ("message.edit", ["id": "e", "kind": "message.edit", "chat": peer, "message_id": "3EB0X"], false),
            ("message.edit", ["id": "e", "kind": "message.edit", "chat": nil, "message_id": "3EB0X", "text": "new"], false),
            ("message.read", ["id": "d", "kind": "message.read", "chat": peer, "message_ids": ["a", "b"]], true),
            ("message.read", ["id": "d", "kind": "message.read", "chat": "1203@g.us", "message_ids": ["a"], "sender": jid], true),
            ("message.read", ["id": "d", "kind": "message.read", "chat": peer, "message_ids": []], false),
            ("message.read", ["id": "d", "kind": "message.read", "chat": peer, "message_ids": .array(Array(repeating: "a", count: 257))], false),
            ("message.read", ["id": "d", "kind": "message.read", "chat": peer, "message_ids": "a"], false),
            ("message.read", ["id": "d", "kind": "message.read", "chat": peer, "message_ids": [true]], false),
            ("device.logout", ["id": "l", "kind": "device.logout"], true),
            ("device.logout", ["kind": "device.logout"], true),
            ("device.logout", ["id": "l", "kind": "device.logout", "force": true], false),
            ("device.logout", ["id": "l"], false),
            ("device.reconnect", ["id": "c", "kind": "device.reconnect"], true),
            ("device.reconnect", ["id": "c", "kind": "device.reconnect", "to": peer], false),
            ("device.reconnect", ["id": "c", "kind": "device.logout"], false),
            ("device.reconnect", [], false),
        ]
        c.append(("message.read", ["id": "d", "kind": "message.read", "chat": peer, "message_ids": ["a"], "sender": .number(1.5)], false))
        return c
    }

    func testValidatorAgreesWithPythonJSONSchema() throws {
        let corpus = Self.corpus
        for kind in CommandKind.allCases {
            XCTAssertTrue(corpus.contains { $0.0 == kind.rawValue && $0.2 }, "a good \(kind.rawValue)")
            XCTAssertTrue(corpus.contains { $0.0 == kind.rawValue && !$0.2 }, "a bad \(kind.rawValue)")
        }
        let ours = corpus.map { CommandParser.validators[CommandKind(rawValue: $0.0)!]!.isValid($0.1) }
        let theirs = try Self.pythonVerdicts(corpus.map { ($0.0, $0.1) })
        XCTAssertEqual(theirs.count, corpus.count)
        for (i, item) in corpus.enumerated() {
            XCTAssertEqual(ours[i], item.2, "ours, item \(i) (\(item.0)): \(CommandParser.validators[CommandKind(rawValue: item.0)!]!.validate(item.1))")
            if i < theirs.count { XCTAssertEqual(theirs[i], item.2, "jsonschema, item \(i) (\(item.0))") }
        }
    }

    /// Runs jsonschema 4.26 (Draft 2020-12) from `.venv-peers/jsonschema` over the corpus, using the files in schemas/.
    static func pythonVerdicts(_ items: [(String, JSONValue)]) throws -> [Bool] {
        let python = root.appendingPathComponent(".venv-peers/jsonschema/bin/python")
        guard FileManager.default.isExecutableFile(atPath: python.path) else {
            throw XCTestError(.failureWhileWaiting, userInfo: [NSLocalizedDescriptionKey:
                "missing \(python.path): python3 -m venv .venv-peers/jsonschema && .venv-peers/jsonschema/bin/pip install -r Tests/Interop/peers/jsonschema.txt"])
        }
        let script = """
            import json, sys
            from jsonschema import Draft202012Validator
            d = sys.argv[1]
            items = json.load(sys.stdin)
            cache = {}
            out = []
            for kind, doc in items:
                if kind not in cache:
                    cache[kind] = Draft202012Validator(json.load(open(f"{d}/{kind}.json")))
                out.append(cache[kind].is_valid(doc))
            json.dump(out, sys.stdout)
            """
        let p = Process()
        p.executableURL = python
        p.arguments = ["-c", script, root.appendingPathComponent("schemas/commands").path]
        let input = Pipe(), output = Pipe()
        p.standardInput = input
        p.standardOutput = output
        try p.run()
        let payload = JSONValue.array(items.map { .array([.string($0.0), $0.1]) }).encoded()
        try input.fileHandleForWriting.write(contentsOf: payload)
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, "python validator failed")
        return (JSONValue.parse(data)?.arrayValue ?? []).compactMap(\.boolValue)
    }

    func testParserRefusesEachBadInputClassWithItsCode() {
        func code(_ body: String, _ props: AMQPProperties = AMQPProperties()) -> CommandErrorCode? {
            if case .failure(let r) = CommandParser.parse(body: Array(body.utf8), properties: props) { return r.code }
            return nil
        }
        let ok = #"{"id":"1","kind":"send.text","to":"+15551234567","text":"hi"}"#
        XCTAssertNil(code(ok))
        XCTAssertNil(code(ok, AMQPProperties(contentType: "application/json; charset=utf-8")))
        XCTAssertEqual(code(ok, AMQPProperties(contentType: "text/plain")), .invalidContentType)
        XCTAssertEqual(code("not json"), .invalidJSON)
        XCTAssertEqual(code("[1,2]"), .invalidJSON)
        if case .failure(let r) = CommandParser.parse(body: [0xFF, 0xFE, 0x7B, 0x7D], properties: AMQPProperties()) {
            XCTAssertEqual(r.code, .invalidJSON)
        } else { XCTFail("bytes that are not UTF-8 are refused") }
        XCTAssertEqual(code(#"{"kind":"send.text","to":"+15551234567","text":"hi"}"#), .missingID)
        XCTAssertNil(code(#"{"kind":"send.text","to":"+15551234567","text":"hi"}"#, AMQPProperties(messageID: "m-1")))
        XCTAssertEqual(code(#"{"id":"1","kind":"bogus"}"#), .unknownKind)
        XCTAssertEqual(code(#"{"id":"1"}"#), .unknownKind)
        XCTAssertEqual(code(#"{"id":"1","kind":"send.text","to":"+15551234567"}"#), .schemaViolation)
        XCTAssertEqual(code(#"{"id":1,"kind":"send.text","to":"+15551234567","text":"hi"}"#), .schemaViolation)
        XCTAssertEqual(code(#"{"id":"1","kind":"send.text","to":"nobody","text":"hi"}"#), .invalidJID)
        XCTAssertEqual(code(#"{"id":"1","kind":"send.text","to":"+15551234567","text":"hi","mentions":["x@example.com"]}"#), .invalidJID)
        XCTAssertEqual(code(#"{"id":"1","kind":"message.read","chat":"+1555","message_ids":["a"]}"#), .invalidJID)

        guard case .success(let c) = CommandParser.parse(
            body: Array(#"{"kind":"send.text","to":"+15551234567","text":"hi","reply_to":{"id":"Q1","sender":"+15557654321"}}"#.utf8),
            properties: AMQPProperties(correlationID: "corr", replyTo: "answers", messageID: "m-2")) else {
            return XCTFail("valid command refused")
        }
        XCTAssertEqual(c.id, "m-2", "the AMQP message_id stands in for a missing id")
        XCTAssertEqual(c.correlationID, "corr")
        XCTAssertEqual(c.replyTo, "answers")
        XCTAssertEqual(c.action, .sendText(to: JID(user: "15551234567", server: JID.userServer), text: "hi",
                                           replyTo: .init(id: "Q1", sender: JID(user: "15557654321", server: JID.userServer)),
                                           mentions: []))
    }

    func testRecipients() {
        XCTAssertEqual(Recipient.parse("+15551234567"), JID(user: "15551234567", server: JID.userServer))
        XCTAssertEqual(Recipient.parse("15551234567@s.whatsapp.net"), JID(user: "15551234567", server: JID.userServer))
        XCTAssertEqual(Recipient.parse("120363000000000001@g.us")?.server, JID.groupServer)
        XCTAssertEqual(Recipient.parse("98765432101234@lid")?.server, JID.lidServer)
        for bad in ["15551234567", "+", "+123456", "+1234567890123456", "+0123456789", "+1555 1234567", "+1555abc4567",
                    "x@example.com", "@s.whatsapp.net", "abc@s.whatsapp.net", "status@broadcast", "a@b@c"] {
            XCTAssertNil(Recipient.parse(bad), bad)
        }
    }

    /// Rate 2/s, burst 3, on a hand-driven clock: three at once, then one every 0.5 s; a
    /// pause refills up to the burst, never beyond.
    func testTokenBucketWithAnInjectedClock() {
        var b = TokenBucket(rate: 2, burst: 3)
        let t0 = Duration.seconds(100)
        XCTAssertEqual(b.reserve(now: t0), .zero)
        XCTAssertEqual(b.reserve(now: t0), .zero)
        XCTAssertEqual(b.reserve(now: t0), .zero)
        XCTAssertEqual(b.reserve(now: t0), .milliseconds(500), "the fourth waits for one refill")
        XCTAssertEqual(b.reserve(now: t0), .seconds(1), "the fifth queues behind it")
        // 1 s later both reserved tokens have arrived; the next one is 0.5 s away.
        XCTAssertEqual(b.reserve(now: t0 + .seconds(1)), .milliseconds(500))
        // A long pause refills to the burst only.
        let later = t0 + .seconds(60)
        for _ in 0..<3 { XCTAssertEqual(b.reserve(now: later), .zero) }
        XCTAssertEqual(b.reserve(now: later), .milliseconds(500))
        // A partial refill: 0.25 s after running dry is half a token.
        var c = TokenBucket(rate: 2, burst: 1)
        XCTAssertEqual(c.reserve(now: .zero), .zero)
        XCTAssertEqual(c.reserve(now: .milliseconds(250)), .milliseconds(250))
    }
}
