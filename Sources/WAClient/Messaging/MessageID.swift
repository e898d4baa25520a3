import Foundation
import WABinary
import WACrypto

/// WhatsApp-style message ids, in the form a web client uses: `3EB0` followed
/// by 18 upper-case hex digits (9 bytes), 22 characters in all.
///
/// - `random(ownJID:)` follows the web client: SHA-256 over the current Unix
///   time (8 bytes big-endian), our user + `@c.us`, and 16 random bytes; the
///   first 9 bytes of the digest are the hex part.
/// - `derived(idempotencyKey:device:)` is ours and deterministic: SHA-256 over
///   `"wabridge-msgid-v1"` ‖ 0x00 ‖ the device's full JID text
///   (`user:device@server`) ‖ 0x00 ‖ the key's UTF-8 bytes; first 9 bytes as
///   upper-case hex after `3EB0`. A command redelivered with the same key on
///   the same device gets the same id (so the recipient's client and our
///   status tracking see one message); another key or another device gets a
///   different one. 72 bits make a collision between distinct keys negligible.
public enum MessageID {
    public static let prefix = "3EB0"
    /// Caller-supplied ids longer than this are refused by `isAcceptable`.
    public static let maxLength = 128

    public static func random(ownJID: JID? = nil, now: Date = Date()) -> String {
        var data = BigEndianBytes.encode(UInt32(truncatingIfNeeded: UInt64(now.timeIntervalSince1970) >> 32), width: 4)
        data += BigEndianBytes.encode(UInt32(truncatingIfNeeded: UInt64(now.timeIntervalSince1970)), width: 4)
        if let ownJID { data += Data((ownJID.user + "@c.us").utf8) }
        data += Symmetric.randomBytes(16)
        return format(Symmetric.sha256(data))
    }

    public static func derived(idempotencyKey: String, device: JID) -> String {
        var data = Data("wabridge-msgid-v1".utf8)
        data.append(0)
        data += Data(device.description.utf8)
        data.append(0)
        data += Data(idempotencyKey.utf8)
        return format(Symmetric.sha256(data))
    }

    /// True for an id a caller may pass as its own: 1…128 printable ASCII
    /// characters without spaces (WhatsApp ids are short alphanumerics).
    public static func isAcceptable(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= maxLength && id.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }

    static func format(_ digest: Data) -> String {
        prefix + digest.prefix(9).map { String(format: "%02X", $0) }.joined()
    }
}
