import Foundation

/// Retry receipts sent per incoming message id, bounded: at most `maxRetries`
/// receipts per id (whatsmeow stops at 5) and at most `capacity` ids tracked
/// (the oldest forgotten first).
public struct RetryCounter: Sendable {
    public static let maxRetries = 5
    public let capacity: Int
    var counts: [String: Int] = [:]
    var order: [String] = []

    public init(capacity: Int = 1_024) { self.capacity = capacity }

    /// The next retry count for `id` (1 for the first failure), or nil when
    /// the bound is reached. `countInMessage` is the `count` of an `<enc>`
    /// that was itself a resend, so a restart does not begin again at 1.
    public mutating func next(for id: String, countInMessage: Int = 0) -> Int? {
        var count = (counts[id] ?? 0) + 1
        if count == 1, countInMessage > 0 { count = countInMessage + 1 }
        if counts[id] == nil {
            order.append(id)
            if order.count > capacity { counts[order.removeFirst()] = nil }
        }
        counts[id] = count
        return count < Self.maxRetries ? count : nil
    }

    public func count(for id: String) -> Int { counts[id] ?? 0 }
}
