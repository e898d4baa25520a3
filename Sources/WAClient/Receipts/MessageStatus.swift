import Foundation

/// Where one of our sent messages stands, from the server ack and receipts.
public enum MessageStatus: Sendable, Hashable {
    case sent
    case delivered
    case read
    case played
    /// The server refused it (`<ack error=N>`), or no ack came within the
    /// send's timeout (`code` = `noServerAck`).
    case failed(code: Int)

    /// The code of `failed` when the server never acknowledged the message
    /// (ours, not the server's: HTTP's "request timeout").
    public static let noServerAck = 408
}
