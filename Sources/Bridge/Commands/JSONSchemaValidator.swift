import Foundation

/// A JSON Schema (draft 2020-12) validator for the subset our command schemas
/// use. Written by hand: the package mirror has no Swift JSON Schema library.
///
/// Supported keywords: `type` (a name or a list; `integer` is a number with no
/// fraction, as the draft says), `enum`, `const`, `required`, `properties`,
/// `additionalProperties` (boolean or schema), `minLength`/`maxLength` (in
/// Unicode code points, like the reference validators), `pattern` (ICU
/// regular expression, unanchored search), `minItems`/`maxItems`, `items`
/// (one schema for every element), `minimum`/`maximum`, `$ref` to a JSON
/// pointer in the same document (`#/$defs/name`), `allOf`/`anyOf`/`oneOf`,
/// and boolean schemas. Anything else (`title`, `description`, `$id`,
/// `$schema`, unknown keywords) is ignored; a schema that relies on another
/// keyword must extend this file first. `CommandSchemaTests` checks that this
/// and Python's `jsonschema` agree on a corpus for every command kind.
public struct JSONSchemaValidator: Sendable {
    /// One way the instance breaks the schema: where (a JSON pointer) and why.
    public struct Violation: Sendable, Equatable, CustomStringConvertible {
        public var path: String
        public var message: String
        public var description: String { "\(path.isEmpty ? "/" : path): \(message)" }
    }

    public let schema: JSONValue

    public init(schema: JSONValue) { self.schema = schema }

    /// Parses a schema document; nil when it is not JSON.
    public init?(text: String) {
        guard let v = JSONValue.parse(Data(text.utf8)) else { return nil }
        schema = v
    }

    /// Every violation (empty when the instance is valid).
    public func validate(_ instance: JSONValue) -> [Violation] {
        var out: [Violation] = []
        check(instance, against: schema, path: "", into: &out, depth: 0)
        return out
    }

    public func isValid(_ instance: JSONValue) -> Bool { validate(instance).isEmpty }

    // MARK: Keywords

    private func check(_ v: JSONValue, against s: JSONValue, path: String, into out: inout [Violation], depth: Int) {
        // A $ref cycle in a schema would recurse forever; ours have none.
        guard depth < 64 else {
            out.append(Violation(path: path, message: "schema nests too deep"))
            return
        }
        switch s {
        case .bool(true): return
        case .bool(false):
            out.append(Violation(path: path, message: "not allowed"))
            return
        case .object: break
        default: return
        }
        func fail(_ m: String) { out.append(Violation(path: path, message: m)) }

        if let ref = s["$ref"]?.stringValue {
            if let target = resolve(ref) {
                check(v, against: target, path: path, into: &out, depth: depth + 1)
            } else {
                fail("unresolvable $ref \(ref)")
            }
        }
        if let t = s["type"] {
            let names = t.arrayValue?.compactMap(\.stringValue) ?? [t.stringValue].compactMap { $0 }
            if !names.contains(where: { Self.hasType(v, $0) }) {
                fail("expected \(names.joined(separator: " or ")), got \(Self.typeName(v))")
            }
        }
        if let c = s["const"], !Self.equal(v, c) { fail("must be \(String(decoding: c.encoded(), as: UTF8.self))") }
        if let e = s["enum"]?.arrayValue, !e.contains(where: { Self.equal(v, $0) }) { fail("not one of the allowed values") }

        if case .string(let str) = v {
            let length = str.unicodeScalars.count
            if let n = s["minLength"]?.numberValue, Double(length) < n { fail("shorter than \(Int(n))") }
            if let n = s["maxLength"]?.numberValue, Double(length) > n { fail("longer than \(Int(n))") }
            if let p = s["pattern"]?.stringValue {
                if let re = try? NSRegularExpression(pattern: p) {
                    let range = NSRange(str.startIndex..<str.endIndex, in: str)
                    if re.firstMatch(in: str, range: range) == nil { fail("does not match \(p)") }
                } else {
                    fail("bad pattern \(p)")
                }
            }
        }
        if case .number(let d) = v {
            if let n = s["minimum"]?.numberValue, d < n { fail("less than \(n)") }
            if let n = s["maximum"]?.numberValue, d > n { fail("greater than \(n)") }
        }
        if case .array(let items) = v {
            if let n = s["minItems"]?.numberValue, Double(items.count) < n { fail("fewer than \(Int(n)) items") }
            if let n = s["maxItems"]?.numberValue, Double(items.count) > n { fail("more than \(Int(n)) items") }
            if let itemSchema = s["items"] {
                for (i, item) in items.enumerated() {
                    check(item, against: itemSchema, path: "\(path)/\(i)", into: &out, depth: depth + 1)
                }
            }
        }
        if case .object(let o) = v {
            for key in s["required"]?.arrayValue?.compactMap(\.stringValue) ?? [] where o[key] == nil {
                fail("missing \(key)")
            }
            let props = s["properties"]?.objectValue ?? [:]
            for (key, value) in o.sorted(by: { $0.key < $1.key }) {
                let child = "\(path)/\(Self.escape(key))"
                if let ps = props[key] {
                    check(value, against: ps, path: child, into: &out, depth: depth + 1)
                } else if let extra = s["additionalProperties"] {
                    if case .bool(false) = extra {
                        out.append(Violation(path: child, message: "not allowed"))
                    } else {
                        check(value, against: extra, path: child, into: &out, depth: depth + 1)
                    }
                }
            }
        }
        if let all = s["allOf"]?.arrayValue {
            for sub in all { check(v, against: sub, path: path, into: &out, depth: depth + 1) }
        }
        if let any = s["anyOf"]?.arrayValue {
            if !any.contains(where: { passes(v, $0, depth: depth + 1) }) { fail("matches none of anyOf") }
        }
        if let one = s["oneOf"]?.arrayValue {
            let n = one.filter { passes(v, $0, depth: depth + 1) }.count
            if n != 1 { fail("matches \(n) of oneOf, not exactly one") }
        }
    }

    private func passes(_ v: JSONValue, _ s: JSONValue, depth: Int) -> Bool {
        var sub: [Violation] = []
        check(v, against: s, path: "", into: &sub, depth: depth)
        return sub.isEmpty
    }

    /// A `#`-relative JSON pointer into this schema (`#/$defs/recipient`).
    private func resolve(_ ref: String) -> JSONValue? {
        guard ref.hasPrefix("#") else { return nil }
        var node = schema
        for raw in ref.dropFirst().split(separator: "/", omittingEmptySubsequences: true) {
            let token = raw.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
            if let o = node.objectValue, let next = o[token] {
                node = next
            } else if let a = node.arrayValue, let i = Int(token), a.indices.contains(i) {
                node = a[i]
            } else {
                return nil
            }
        }
        return node
    }

    private static func escape(_ key: String) -> String {
        key.replacingOccurrences(of: "~", with: "~0").replacingOccurrences(of: "/", with: "~1")
    }

    static func hasType(_ v: JSONValue, _ name: String) -> Bool {
        switch (name, v) {
        case ("null", .null), ("boolean", .bool), ("number", .number), ("string", .string),
             ("array", .array), ("object", .object): return true
        case ("integer", .number(let d)): return d.isFinite && d.rounded() == d
        default: return false
        }
    }

    static func typeName(_ v: JSONValue) -> String {
        switch v {
        case .null: "null"
        case .bool: "boolean"
        case .number: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }

    /// JSON equality (`JSONValue` already compares numbers by value: 1 == 1.0).
    static func equal(_ a: JSONValue, _ b: JSONValue) -> Bool { a == b }
}
