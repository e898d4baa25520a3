import Foundation
import WABinary
import WAProto

/// The messages we sent lately, so a retry receipt can be answered with a
/// resend. Bounded to `capacity` entries, oldest dropped first (whatsmeow
/// keeps 256).
public struct RecentMessageCache: Sendable {
    public struct Key: Hashable, Sendable {
        public var chat: JID
        public var id: String
        public init(chat: JID, id: String) {
            self.chat = chat.nonAD
            self.id = id
        }
    }

    public let capacity: Int
    var messages: [Key: WAE2E_Message] = [:]
    var order: [Key] = []

    public init(capacity: Int = 256) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    public var count: Int { messages.count }

    public mutating func insert(_ message: WAE2E_Message, chat: JID, id: String) {
        let key = Key(chat: chat, id: id)
        if messages.updateValue(message, forKey: key) == nil {
            order.append(key)
            if order.count > capacity { messages[order.removeFirst()] = nil }
        }
    }

    public func message(chat: JID, id: String) -> WAE2E_Message? { messages[Key(chat: chat, id: id)] }
}
