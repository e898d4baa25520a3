import BridgeStore
import Foundation

/// A device's own settings, kept as a JSON object in the registry's `settings` column. Each
/// field overrides the worker-wide default (`WABRIDGE_HISTORY_*`) for this device only; an
/// absent field means "the worker's default", so changing the environment still reaches every
/// device that never chose otherwise.
public struct DeviceSettings: Sendable, Equatable, Codable {
    /// Overrides of `HistorySettings`.
    public struct History: Sendable, Equatable, Codable {
        /// Days of history kept (0: no age bound).
        public var days: Int?
        /// Historical messages kept.
        public var maxMessages: Int?
        /// Publish stored historical messages as `message.received` with `"historical": true`.
        public var events: Bool?

        public init(days: Int? = nil, maxMessages: Int? = nil, events: Bool? = nil) {
            self.days = days
            self.maxMessages = maxMessages
            self.events = events
        }

        enum CodingKeys: String, CodingKey, CaseIterable {
            case days, maxMessages = "max_messages", events
        }

        var isEmpty: Bool { days == nil && maxMessages == nil && events == nil }
    }

    public var history: History

    public init(history: History = History()) { self.history = history }

    enum CodingKeys: String, CodingKey, CaseIterable { case history }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        history = try c.decodeIfPresent(History.self, forKey: .history) ?? History()
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        if !history.isEmpty { try c.encode(history, forKey: .history) }
    }

    /// The history settings this device uses, given the worker's defaults.
    public func history(defaults: HistorySettings) -> HistorySettings {
        var h = defaults
        if let days = history.days { h.bounds.maxAge = days > 0 ? TimeInterval(days) * 86_400 : nil }
        if let n = history.maxMessages { h.bounds.maxMessages = n }
        if let e = history.events { h.publishMessages = e }
        return h
    }

    /// Reads the registry's text. Settings that do not parse (a hand-edited row) are an error
    /// for the caller to report; the device then runs on the worker's defaults.
    static func stored(_ text: String) throws(DeviceError) -> DeviceSettings {
        do { return try JSONDecoder().decode(DeviceSettings.self, from: Data(text.utf8)) } catch {
            throw DeviceError(.invalidSettings, "the stored settings are not valid: \(text.count) bytes")
        }
    }

    func storedText() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        // Encoding a struct of optionals and scalars cannot fail.
        return (try? String(decoding: encoder.encode(self), as: UTF8.self)) ?? "{}"
    }

    /// Applies a JSON merge patch (RFC 7396): a field set to `null` goes back to the worker's
    /// default, an absent field is left alone. Unknown fields, wrong types and values out of
    /// range are refused with `INVALID_SETTINGS`, naming the field, so a typo never passes silently.
    public func merging(patch body: Data) throws(DeviceError) -> DeviceSettings {
        guard let object = try? JSONSerialization.jsonObject(with: body), let keys = object as? [String: Any] else {
            throw DeviceError(.invalidSettings, "the body must be a JSON object")
        }
        for key in keys.keys where CodingKeys(rawValue: key) == nil {
            throw DeviceError(.invalidSettings, "unknown setting \"\(Self.printable(key))\"")
        }
        for key in (keys["history"] as? [String: Any])?.keys.sorted() ?? [] where History.CodingKeys(rawValue: key) == nil {
            throw DeviceError(.invalidSettings, "unknown setting \"history.\(Self.printable(key))\"")
        }
        let patch: Patch
        do { patch = try JSONDecoder().decode(Patch.self, from: body) } catch let DecodingError.typeMismatch(_, context) {
            throw DeviceError(.invalidSettings, "\"\(Self.path(context))\" has the wrong type")
        } catch {
            throw DeviceError(.invalidSettings, "the body is not a settings patch")
        }
        var next = self
        switch patch.history {
        case .absent: break
        case .null: next.history = History()
        case .value(let h):
            h.days.apply(to: &next.history.days)
            h.maxMessages.apply(to: &next.history.maxMessages)
            h.events.apply(to: &next.history.events)
        }
        if let d = next.history.days, !(0...36_500).contains(d) {
            throw DeviceError(.invalidSettings, "\"history.days\" must be in 0...36500 (0: no age bound)")
        }
        if let n = next.history.maxMessages, !(0...10_000_000).contains(n) {
            throw DeviceError(.invalidSettings, "\"history.max_messages\" must be in 0...10000000")
        }
        return next
    }

    /// One field of a merge patch: not given, `null`, or a value.
    enum PatchField<T: Decodable & Sendable>: Sendable {
        case absent, null, value(T)

        func apply(to target: inout T?) {
            switch self {
            case .absent: break
            case .null: target = nil
            case .value(let v): target = v
            }
        }
    }

    struct Patch: Decodable {
        struct HistoryPatch: Decodable, Sendable {
            var days: PatchField<Int>
            var maxMessages: PatchField<Int>
            var events: PatchField<Bool>

            init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: History.CodingKeys.self)
                days = try Patch.field(c, .days)
                maxMessages = try Patch.field(c, .maxMessages)
                events = try Patch.field(c, .events)
            }
        }
        var history: PatchField<HistoryPatch>

        init(from decoder: any Decoder) throws {
            history = try Self.field(decoder.container(keyedBy: CodingKeys.self), .history)
        }

        static func field<K: CodingKey, T: Decodable>(_ c: KeyedDecodingContainer<K>, _ key: K) throws -> PatchField<T> {
            guard c.contains(key) else { return .absent }
            if try c.decodeNil(forKey: key) { return .null }
            return .value(try c.decode(T.self, forKey: key))
        }
    }

    private static func path(_ context: DecodingError.Context) -> String {
        context.codingPath.map(\.stringValue).joined(separator: ".")
    }

    /// A key echoed in an error: bounded, so a huge key does not fill the answer.
    private static func printable(_ key: String) -> String { String(key.prefix(64)) }
}

/// A device's settings for the admin API: what it chose, and what it runs with.
public struct DeviceSettingsView: Sendable, Equatable {
    public var stored: DeviceSettings
    public var history: HistorySettings
}
