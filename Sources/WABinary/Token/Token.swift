/// Tag bytes and token lookups of WhatsApp's binary XML (dictionary version 3).
///
/// A value on the wire starts with one byte: 1–235 is a single-byte token,
/// 236–239 selects a double-byte dictionary, and the rest are the tags below.
public enum Token {
    public static let listEmpty: UInt8 = 0
    public static let dictionary0: UInt8 = 236
    public static let dictionary3: UInt8 = 239
    public static let interopJID: UInt8 = 245
    public static let fbJID: UInt8 = 246
    public static let adJID: UInt8 = 247
    public static let list8: UInt8 = 248
    public static let list16: UInt8 = 249
    public static let jidPair: UInt8 = 250
    public static let hex8: UInt8 = 251
    public static let binary8: UInt8 = 252
    public static let binary20: UInt8 = 253
    public static let binary32: UInt8 = 254
    public static let nibble8: UInt8 = 255

    /// The dictionary version carried in the connection header.
    public static var dictionaryVersion: UInt8 { TokenTables.dictionaryVersion }

    /// Where a string sits in the dictionaries, if it is a token.
    public enum Index: Sendable, Hashable {
        case single(UInt8)
        case double(dictionary: UInt8, index: UInt8)
    }

    /// String → token, built once from the immutable tables. Index 0 (the
    /// empty string) is left out: byte 0 means "empty list", not "".
    private static let reverse: [String: Index] = {
        var map: [String: Index] = [:]
        map.reserveCapacity(TokenTables.single.count + 1024)
        for (i, token) in TokenTables.single.enumerated() where i > 0 {
            map[token] = .single(UInt8(i))
        }
        for (d, table) in TokenTables.double.enumerated() {
            for (i, token) in table.enumerated() {
                map[token] = .double(dictionary: UInt8(d), index: UInt8(i))
            }
        }
        return map
    }()

    /// The token for `string`, if it has one.
    public static func index(of string: String) -> Index? { reverse[string] }

    /// The single-byte token `byte` stands for, or nil if `byte` is not one.
    public static func single(_ byte: UInt8) -> String? {
        byte >= 1 && Int(byte) < TokenTables.single.count ? TokenTables.single[Int(byte)] : nil
    }

    /// The double-byte token `index` of dictionary `dictionary` (0–3), or nil.
    public static func double(dictionary: UInt8, index: UInt8) -> String? {
        guard Int(dictionary) < TokenTables.double.count else { return nil }
        let table = TokenTables.double[Int(dictionary)]
        return Int(index) < table.count ? table[Int(index)] : nil
    }
}
