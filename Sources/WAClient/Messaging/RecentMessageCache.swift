import Foundation
import WABinary
import WAProto

/// The messages we sent lately, so a retry receipt can be answered with a
/// resend. Found by message id alone: a retry receipt may name the chat by
/// another address than the send did (a LID for a number, or the reverse).
/// Bounded to `capacity` entries, oldest dropped first (whatsmeow keeps 256).
public struct RecentMessageCache: Sendable {
    public struct Entry: Sendable {
        /// The chat as we sent to it.
        public var chat: JID
        public var message: WAE2E_Message
    }

    public let capacity: Int
    var entries: [String: Entry] = [:]
    var order: [String] = []

    public init(capacity: Int = 256) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    public var count: Int { entries.count }

    public mutating func insert(_ message: WAE2E_Message, chat: JID, id: String) {
        if entries.updateValue(Entry(chat: chat.nonAD, message: message), forKey: id) == nil {
            order.append(id)
            if order.count > capacity { entries[order.removeFirst()] = nil }
        }
    }

    /// The message sent as `id`, and the chat it went to.
    public func entry(id: String) -> Entry? { entries[id] }

    /// The message sent as `id` (the chat is not compared: see the type's comment).
    public func message(chat: JID, id: String) -> WAE2E_Message? { entries[id]?.message }
}
