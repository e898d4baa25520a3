import Foundation
import WABinary

/// Group metadata (`w:g2`): the query a client sends before a group send and the reading
/// of its answer (`GroupMetadata`). Shape (whatsmeow group.go `getGroupInfo`):
/// `<iq xmlns=w:g2 type=get to=G@g.us><query request=interactive/></iq>` →
/// `<group id …><participant jid …/>…</group>` (`id` is the bare group id). The server's
/// side lives in the simulator (`WASim/Server/GroupServerNodes.swift`).
public enum GroupNodes {
    /// Most participants read from one answer.
    public static let maxParticipants = GroupMetadata.maxParticipants

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
}
