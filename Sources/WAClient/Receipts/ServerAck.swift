import Foundation
import WABinary

/// The server's `<ack class=message id [error] [phash] t>` for a message we sent.
public struct ServerAck: Sendable, Equatable {
    public var messageID: String
    /// `sent`, or `failed(code)` when the ack carries `error`.
    public var status: MessageStatus
    /// The server's participant hash; differing from ours means our device
    /// list for that chat is stale (invalidate the `DeviceListCache`).
    public var phash: String?
    public var timestamp: Date?

    /// nil for an ack of another class (receipt, notification…).
    public init?(parsing node: Node) throws {
        guard node.tag == "ack", node.string("class") == "message" else { return nil }
        messageID = try node.requiredString("id", in: "message ack")
        if let error = node.string("error") {
            status = .failed(code: Int(error) ?? -1)
        } else {
            status = .sent
        }
        phash = node.string("phash")
        timestamp = node.int("t").map { Date(timeIntervalSince1970: TimeInterval($0)) }
    }
}
