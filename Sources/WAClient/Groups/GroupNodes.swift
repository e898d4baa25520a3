import Foundation
import WABinary

/// Group metadata (`w:g2`): the query a client sends before a group send, its
/// answer, and the server's side for the simulator. Shape (simulator facts):
/// `<iq xmlns=w:g2 type=get to=G@g.us><query request=interactive/></iq>` →
/// `<group id creator creation subject s_t s_o><participant jid [type=admin|superadmin]/>…</group>`
/// (`id` is the bare group id).
public enum GroupNodes {
    /// Most participants read from one answer.
    public static let maxParticipants = GroupMetadata.maxParticipants

    public struct Info: Sendable, Equatable {
        public var jid: JID
        public var subject: String
        public var creator: JID?
        public var creation: Int
        public var participants: [JID]
        public var admins: Set<JID>

        public init(jid: JID, subject: String, creator: JID?, creation: Int, participants: [JID], admins: Set<JID> = []) {
            self.jid = jid
            self.subject = subject
            self.creator = creator
            self.creation = creation
            self.participants = participants
            self.admins = admins
        }
    }

    public static func metadataQueryIQ(id: String, group: JID) throws -> Node {
        guard group.server == JID.groupServer else { throw WAClientError(.invalidRecipient, "group query for a \(group.server) JID") }
        return Node("iq", attributes: [
            "id": .string(id), "type": "get", "xmlns": "w:g2", "to": .jid(group.nonAD),
        ], children: [Node("query", attributes: ["request": "interactive"])])
    }

    /// The `<group>` of a metadata answer (`GroupMetadata(parsing:)`); an `<iq type=error>`
    /// is `client.server_error`, a missing `<group>` `client.group_metadata_invalid`.
    public static func parseMetadata(_ answer: Node, group: JID) throws -> GroupMetadata {
        try IQStanza.checkResult(answer, "group metadata")
        guard let node = answer.child("group") else {
            throw WAClientError(.groupMetadataInvalid, "group metadata: <group> missing")
        }
        return try GroupMetadata(parsing: node, expected: group)
    }

    /// Server side: the answer to a metadata query.
    public static func metadataAnswer(to query: Node, info: Info) -> Node {
        var group = Node("group", attributes: [
            "id": .string(info.jid.user), "subject": .string(info.subject), "creation": .string(String(info.creation)),
            "s_t": .string(String(info.creation)),
        ], children: info.participants.map { jid in
            var participant = Node("participant", attributes: ["jid": .jid(jid)])
            if info.admins.contains(jid) { participant["type"] = jid == info.creator ? "superadmin" : "admin" }
            return participant
        })
        if let creator = info.creator {
            group["creator"] = .jid(creator)
            group["s_o"] = .jid(creator)
        }
        return IQStanza.result(to: query, children: [group])
    }
}
