import WABinary

/// The PN↔LID mappings a `<message>` stanza tells (whatsmeow's message source parsing):
/// the sender's `sender_pn`/`sender_lid` (1:1) or `participant_pn`/`participant_lid`
/// (groups) beside `from`/`participant`, and for a copy of our own message the peer's
/// `peer_recipient_pn`/`peer_recipient_lid` beside `recipient`.
public enum MessageAddressing {
    /// Throws `client.stanza_malformed` when one of those attributes is there but is not a
    /// JID, or names the same kind of address as the one it stands beside.
    public static func mappings(in stanza: Node) throws -> [LIDMapping] {
        let ctx = "message addressing"
        guard let from = stanza.jid("from") else { throw WAClientError(.stanzaMalformed, "\(ctx): from missing or not a JID") }
        func optional(_ key: String) throws -> JID? {
            guard stanza[key] != nil else { return nil }
            guard let jid = stanza.jid(key) else { throw WAClientError(.stanzaMalformed, "\(ctx): \(key) is not a JID") }
            return jid
        }
        var out: [LIDMapping] = []
        let isGroup = from.server == JID.groupServer || from.server == JID.broadcastServer
        let sender = isGroup ? try optional("participant") : from
        let prefix = isGroup ? "participant" : "sender"
        if let sender, let alt = try optional(sender.server == JID.lidServer ? "\(prefix)_pn" : "\(prefix)_lid") {
            out.append(try LIDMapping(sender, alt))
        }
        if let recipient = try optional("recipient"), recipient.server != JID.groupServer,
           let alt = try optional(recipient.server == JID.lidServer ? "peer_recipient_pn" : "peer_recipient_lid") {
            out.append(try LIDMapping(recipient, alt))
        }
        return out
    }
}
