import Foundation
import WABinary

/// The server's side of messages and receipts: how a client's `<message>` is
/// fanned out per device, how the sender is acked, and how a receipt reaches
/// the original sender. Shapes follow `shared/docs/simulator-facts.md`; the
/// parsing is the server's own (`ServerStanza.swift`), never the client's.
public enum ServerMessageRouting {
    /// Most devices one stanza may name (the server refuses more).
    public static let maxDevices = 1_024

    /// One delivery of a sent message.
    public struct Delivery: Sendable {
        public var device: JID
        public var node: Node
        public init(device: JID, node: Node) {
            self.device = device
            self.node = node
        }
    }

    /// The sender's and the peer's other addresses, which a LID-addressed 1:1 delivery names
    /// as whatsmeow reads them: `sender_pn` (or `sender_lid` on a phone-number-addressed one)
    /// for the recipient's devices, `peer_recipient_pn` for the sender's own other devices.
    public struct Alternates: Sendable {
        public var sender: JID?
        public var recipient: JID?
        public init(sender: JID? = nil, recipient: JID? = nil) {
            self.sender = sender
            self.recipient = recipient
        }
    }

    /// Splits a client's `<message>` into one stanza per device.
    /// - 1:1: each `<participants><to jid=D>` becomes
    ///   `<message from=sender id t type [notify] [sender_pn|sender_lid] [recipient=chat peer_recipient_pn for the sender's own devices]><enc/></message>`.
    /// - resend (no `<participants>`, an `<enc>` child): one stanza for the device in `to`.
    /// - group (`to` is `@g.us`): each device in `memberDevices` except the
    ///   sender gets `<message from=G participant=sender id t type [notify]>`
    ///   with its own `<enc>` (the SKDM) when it has one, then the skmsg.
    /// - each stanza whose `<enc>` is a pkmsg also carries the sender's `<device-identity>`.
    public static func deliveries(
        of sent: Node, from sender: JID, memberDevices: [JID] = [], timestamp: Int, pushName: String? = nil,
        alternates: Alternates = Alternates()
    ) throws -> [Delivery] {
        let ctx = "routing"
        let to = try sent.serverJID("to", in: ctx)
        let id = try sent.serverString("id", in: ctx)
        let targets = sent.child("participants")?.children("to") ?? []
        guard targets.count <= maxDevices, memberDevices.count <= maxDevices else {
            throw SimError("sim.too_many_devices", "\(ctx): more than \(maxDevices) devices")
        }
        var perDevice: [JID: Node] = [:]
        var order: [JID] = []
        for target in targets {
            let device = try target.serverJID("jid", in: ctx)
            perDevice[device] = try target.serverChild("enc", in: ctx)
            order.append(device)
        }
        func header(_ base: [Attribute]) -> [Attribute] {
            var attrs = base + [Attribute("id", .string(id)), Attribute("t", .string(String(timestamp))),
                                Attribute("type", .string(sent.string("type") ?? "text"))]
            if let edit = sent["edit"] { attrs.append(Attribute("edit", edit)) }
            if let pushName { attrs.append(Attribute("notify", .string(pushName))) }
            return attrs
        }
        // The sender's ADV identity travels with each pkmsg (the recipient verifies it).
        let deviceIdentity = sent.child("device-identity")
        func withIdentity(_ children: [Node]) -> [Node] {
            guard let deviceIdentity, children.contains(where: { $0.string("type") == "pkmsg" }) else { return children }
            return children + [deviceIdentity]
        }
        if to.server == JID.groupServer {
            let skmsg = sent.children("enc").first { $0.string("type") == "skmsg" }
            var out: [Delivery] = []
            for device in memberDevices where device != sender {
                var children: [Node] = []
                if let enc = perDevice[device] { children.append(enc) }
                if let skmsg { children.append(skmsg) }
                guard !children.isEmpty else { continue }
                out.append(Delivery(device: device, node: Node(
                    "message", header([Attribute("from", .jid(to)), Attribute("participant", .jid(sender))]),
                    content: .nodes(withIdentity(children)))))
            }
            return out
        }
        func senderAlternate(_ attrs: inout [Attribute]) {
            guard let alt = alternates.sender else { return }
            attrs.append(Attribute(sender.server == JID.lidServer ? "sender_pn" : "sender_lid", .jid(alt)))
        }
        if order.isEmpty, to.server != JID.broadcastServer {
            // A resend after a retry receipt: one `<enc count>` for the one device in `to`, no `<participants>`.
            let encs = sent.children("enc")
            guard !encs.isEmpty else { return [] }
            var attrs = header([Attribute("from", .jid(sender))])
            senderAlternate(&attrs)
            if let recipient = sent["recipient"] { attrs.append(Attribute("recipient", recipient)) }
            return [Delivery(device: to, node: Node("message", attrs, content: .nodes(withIdentity(encs))))]
        }
        return order.compactMap { device in
            guard let enc = perDevice[device] else { return nil }
            var attrs = header([Attribute("from", .jid(sender))])
            if device.user == sender.user && device.server == sender.server {
                attrs.append(Attribute("recipient", .jid(to.nonAD)))
                if let alt = alternates.recipient {
                    attrs.append(Attribute(to.server == JID.lidServer ? "peer_recipient_pn" : "peer_recipient_lid", .jid(alt)))
                }
            } else {
                senderAlternate(&attrs)
            }
            return Delivery(device: device, node: Node("message", attrs, content: .nodes(withIdentity([enc]))))
        }
    }

    /// The server's ack to the sender: `<ack class=message id from=<to> t [phash] [error]>`.
    public static func ack(for sent: Node, timestamp: Int, phash: String? = nil, error: Int? = nil) -> Node {
        var node = Node("ack", attributes: ["class": "message", "id": .string(sent.string("id") ?? "")])
        if let to = sent["to"] { node["from"] = to }
        node["t"] = .string(String(timestamp))
        if let phash { node["phash"] = .string(phash) }
        if let error { node["error"] = .string(String(error)) }
        return node
    }

    /// Who a client's receipt is for: the group message's author
    /// (`participant`), else the 1:1 peer in `to`.
    public static func originalSender(of receipt: Node) -> JID? {
        receipt.jid("participant") ?? receipt.jid("to")
    }

    /// A client's receipt as delivered to the original sender: `from` is the
    /// receipting device (1:1) or the group with `participant` = that device.
    public static func forward(receipt: Node, from device: JID, timestamp: Int) throws -> Node {
        let to = try receipt.serverJID("to", in: "receipt routing")
        var attrs = to.server == JID.groupServer
            ? [Attribute("from", .jid(to)), Attribute("participant", .jid(device))]
            : [Attribute("from", .jid(device))]
        attrs += receipt.attributes.filter { !["to", "participant", "from"].contains($0.key) }
        if receipt["t"] == nil { attrs.append(Attribute("t", .string(String(timestamp)))) }
        return Node("receipt", attrs, content: receipt.content)
    }
}
