import Foundation

/// Where one of our sent messages stands, from the server ack and receipts.
public enum MessageStatus: Sendable, Hashable {
    case sent
    case delivered
    case read
    case played
    /// The server refused it (`<ack error=N>`).
    case failed(code: Int)
}
