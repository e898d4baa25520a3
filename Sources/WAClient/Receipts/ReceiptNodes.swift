import Foundation
import WABinary

/// Receipts we send for received messages (delivery on receive, read and
/// played on demand) and the `<ack>` the server expects for a receipt it
/// delivered to us.
///
/// ```
/// <receipt id to=<chat> [participant=<sender in a group>] [type=read|played|sender]
///          [recipient] [t]>[<list><item id/>…</list>]</receipt>
/// <ack class=receipt id to=<receipt from> [participant] [type]/>
/// ```
public enum ReceiptNodes {
    /// Most extra ids in one read receipt's `<list>` (and read from one incoming receipt).
    public static let maxListItems = 256

    /// The delivery receipt for a message we decrypted: no `type`, or `sender`
    /// for a copy of our own message (1:1: then `to` is our sending device and
    /// `recipient` the chat; group: `to` the group, `participant` our device).
    public static func delivery(for message: ReceivedMessage) -> Node {
        var node = Node("receipt", attributes: ["id": .string(message.id)])
        if message.isGroup {
            node["to"] = .jid(message.chat)
            node["participant"] = .jid(message.sender)
            if message.isFromMe { node["type"] = "sender" }
        } else if message.isFromMe {
            node["to"] = .jid(message.sender)
            node["type"] = "sender"
            node["recipient"] = .jid(message.chat)
        } else {
            node["to"] = .jid(message.chat)
        }
        return node
    }

    /// A plain delivery receipt answering a `<message>` stanza as it came (used when nothing was decrypted).
    static func delivery(answering stanza: Node) -> Node {
        var node = Node("receipt", attributes: ["id": .string(stanza.string("id") ?? "")])
        if let from = stanza["from"] { node["to"] = from }
        if let participant = stanza["participant"] { node["participant"] = participant }
        return node
    }

    /// A read (or `played`) receipt for messages of one sender in `chat`, on demand.
    /// - Parameters:
    ///   - ids: the first goes in `id`, the rest in `<list><item id/>`.
    ///   - sender: the author in a group (goes in `participant`); nil for 1:1.
    public static func read(
        ids: [String], chat: JID, sender: JID? = nil, timestamp: Date = Date(), played: Bool = false
    ) throws -> Node {
        guard let first = ids.first, ids.count <= maxListItems + 1 else {
            throw WAClientError(.limitExceeded, "read receipt for \(ids.count) ids, 1…\(maxListItems + 1) allowed")
        }
        var node = Node("receipt", attributes: [
            "id": .string(first), "to": .jid(chat.nonAD), "type": played ? "played" : "read",
            "t": .string(String(Int64(timestamp.timeIntervalSince1970))),
        ])
        if let sender, chat.server == JID.groupServer { node["participant"] = .jid(sender.nonAD) }
        if ids.count > 1 {
            node.content = .nodes([Node("list", children: ids.dropFirst().map { Node("item", attributes: ["id": .string($0)]) })])
        }
        return node
    }

    /// The `<ack class=receipt>` for a receipt the server delivered to us.
    public static func ack(for receipt: Node) -> Node {
        var node = Node("ack", attributes: ["class": "receipt", "id": .string(receipt.string("id") ?? "")])
        if let from = receipt["from"] { node["to"] = from }
        if let participant = receipt["participant"] { node["participant"] = participant }
        if let type = receipt["type"] { node["type"] = type }
        return node
    }
}
