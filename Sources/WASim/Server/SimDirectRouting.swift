import WABinary
import WAClient

extension WASim {
    /// Error of a DM addressed to the phone number of an account moved to LID addressing.
    /// Reports against the real service (Baileys #2683, OpenWA #717) show `<ack error=463>`
    /// for exactly this: a PN-addressed DM to a LID-mapped contact, with or without a token.
    static let pnToMigratedAccountError = 463
    /// A stanza mixing addressings (a LID `to` with phone-number `<participants>`, or the
    /// reverse) is refused whole with 400 (whatsapp-rust #730).
    static let mixedAddressingError = 400

    /// The 1:1 branch of `routeMessage`: the server's addressing rules, then one delivery per
    /// named device (in the addressing the sender used: `from` is the sender's LID device for a
    /// LID-addressed stanza, with `sender_pn`; its own devices get `recipient` and
    /// `peer_recipient_pn`), and the ack with the participant hash in that addressing.
    func routeDirect(_ sent: Node, to: JID, from sender: JID, timestamp now: Int) -> (ack: Node, deliveries: [ServerMessageRouting.Delivery]) {
        let peer = phoneNumberForm(to.nonAD)
        let viaLID = to.server == JID.lidServer
        if !viaLID, peer.user != sender.user, phones[peer.user]?.lidMigrated == true {
            return (ServerMessageRouting.ack(for: sent, timestamp: now, error: Self.pnToMigratedAccountError), [])
        }
        let named = (sent.child("participants")?.children("to") ?? []).compactMap { $0.jid("jid") }
        if named.contains(where: { $0.server != to.server }) {
            return (ServerMessageRouting.ack(for: sent, timestamp: now, error: Self.mixedAddressingError), [])
        }
        if let refusal = privacyTokenRefusal(sent, from: sender, to: peer) {
            return (ServerMessageRouting.ack(for: sent, timestamp: now, error: refusal), [])
        }
        let addressedSender = viaLID ? lidForm(sender) : sender
        let alternates = viaLID
            ? ServerMessageRouting.Alternates(sender: sender.nonAD, recipient: peer)
            : ServerMessageRouting.Alternates(
                sender: phones[sender.user].map { _ in lidForm(sender.nonAD) }, recipient: phones[peer.user].map { _ in lidForm(peer) })
        guard let fanned = try? ServerMessageRouting.deliveries(
            of: sent, from: addressedSender, timestamp: now, pushName: phones[sender.user]?.pushName, alternates: alternates)
        else { return (ServerMessageRouting.ack(for: sent, timestamp: now, error: 400), []) }
        let known = Set(allDevices(of: peer.user) + allDevices(of: sender.user))
        noteChatted(from: sender, to: peer)
        let deliveries = fanned.compactMap { delivery -> ServerMessageRouting.Delivery? in
            let device = phoneNumberForm(delivery.device)
            return known.contains(device) && device != sender ? ServerMessageRouting.Delivery(device: device, node: delivery.node) : nil
        }
        // The hash covers the devices in the addressing the sender used (LID or phone number).
        let hashed = viaLID ? Set(known.map(lidForm)) : known
        return (ServerMessageRouting.ack(for: sent, timestamp: now, phash: ParticipantHash.v2(hashed)), deliveries)
    }
}
