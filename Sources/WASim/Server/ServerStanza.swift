import WABinary

/// The server's own reading of client stanzas: attribute and child lookups that
/// throw `SimError("sim.bad_stanza")`. Deliberately not the client's parser
/// (`WAClient`): a rule the client and the server share cannot catch a client bug.
extension Node {
    func serverJID(_ key: String, in context: String) throws -> JID {
        guard let jid = jid(key) else { throw SimError("sim.bad_stanza", "\(context): attribute \(key) missing or not a JID") }
        return jid
    }

    func serverString(_ key: String, in context: String) throws -> String {
        guard let value = string(key), !value.isEmpty else { throw SimError("sim.bad_stanza", "\(context): attribute \(key) missing") }
        return value
    }

    func serverChild(_ tag: String, in context: String) throws -> Node {
        guard let node = child(tag) else { throw SimError("sim.bad_stanza", "\(context): <\(tag)> missing") }
        return node
    }

    /// An optional JID attribute: nil when absent, an error when present and not a JID.
    func serverOptionalJID(_ key: String, in context: String) throws -> JID? {
        guard self[key] != nil else { return nil }
        return try serverJID(key, in: context)
    }
}
