import Foundation

/// The operator's name for an account slot: `[A-Za-z0-9][A-Za-z0-9_-]{0,63}`.
/// Safe as a folder name, a routing key, a queue name and a URL segment.
public struct DeviceID: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    public let rawValue: String

    /// Validates `text`; anything else is `store.invalid_device_id`.
    public init(_ text: String) throws(StoreError) {
        guard Self.isValid(text) else {
            throw StoreError(.invalidDeviceID, "device ID must match [A-Za-z0-9][A-Za-z0-9_-]{0,63}")
        }
        rawValue = text
    }

    /// A new random ID (a lowercase UUID), always valid.
    public static func generate() -> DeviceID {
        try! DeviceID(UUID().uuidString.lowercased())
    }

    public static func isValid(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard (1...64).contains(bytes.count) else { return false }
        func alnum(_ b: UInt8) -> Bool {
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
        }
        guard alnum(bytes[0]) else { return false }
        return bytes.dropFirst().allSatisfy { alnum($0) || $0 == 0x5F || $0 == 0x2D }
    }

    public var description: String { rawValue }
    public static func < (lhs: DeviceID, rhs: DeviceID) -> Bool { lhs.rawValue < rhs.rawValue }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        try self.init(text)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}
