import Foundation
import WABinary

/// An incoming `<receipt>`, typed.
///
/// `type` absent (or `inactive`) → delivered; `read`, `read-self` → read;
/// `played`, `played-self` → played; `sender` → delivered to another of our
/// own devices; `retry` → a peer could not decrypt (see `RetryReceipt`);
/// anything else (`server-error`, `peer_msg`, `hist_sync`…) is `other` and
/// only needs its ack. The ids are `id` plus each `<list><item id/>`.
public enum ReceiptEvent: Sendable {
    case status(StatusUpdate)
    case retry(RetryReceipt)
    case other(type: String, ids: [String], from: JID)

    public struct StatusUpdate: Sendable, Hashable {
        public var status: MessageStatus
        public var messageIDs: [String]
        /// The chat: the peer (1:1) or the group.
        public var chat: JID
        /// Who read / received: the device in `from` (1:1) or `participant` (group).
        public var by: JID
        /// True for `read-self` / `played-self` / `sender`: one of our own devices.
        public var isSelf: Bool
        public var timestamp: Date?

        public init(status: MessageStatus, messageIDs: [String], chat: JID, by: JID, isSelf: Bool, timestamp: Date?) {
            self.status = status
            self.messageIDs = messageIDs
            self.chat = chat
            self.by = by
            self.isSelf = isSelf
            self.timestamp = timestamp
        }
    }

    public init(parsing node: Node) throws {
        let ctx = "receipt"
        guard node.tag == "receipt" else { throw WAClientError(.stanzaMalformed, "\(ctx): not a receipt") }
        let type = node.string("type") ?? ""
        if type == "retry" {
            self = .retry(try RetryReceipt(parsing: node))
            return
        }
        let from = try node.requiredJID("from", in: ctx)
        var ids = [try node.requiredString("id", in: ctx)]
        if let list = node.child("list") {
            let items = list.children("item")
            guard items.count <= ReceiptNodes.maxListItems else {
                throw WAClientError(.limitExceeded, "\(ctx): \(items.count) items, bound \(ReceiptNodes.maxListItems)")
            }
            ids += items.compactMap { $0.string("id") }
        }
        let status: MessageStatus
        var isSelf = false
        switch type {
        case "", "inactive": status = .delivered
        case "sender": status = .delivered; isSelf = true
        case "read": status = .read
        case "read-self": status = .read; isSelf = true
        case "played": status = .played
        case "played-self": status = .played; isSelf = true
        default:
            self = .other(type: type, ids: ids, from: from)
            return
        }
        let participant = node.jid("participant")
        let isGroup = from.server == JID.groupServer || from.server == JID.broadcastServer
        let chat = isGroup ? from : (node.jid("recipient") ?? from).nonAD
        let timestamp = node.int("t").map { Date(timeIntervalSince1970: TimeInterval($0)) }
        self = .status(StatusUpdate(status: status, messageIDs: ids, chat: chat, by: participant ?? from,
                                    isSelf: isSelf, timestamp: timestamp))
    }
}
