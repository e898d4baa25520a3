import Foundation
import WABinary

/// A `<notification type=w:gp2 from=G@g.us [participant] [participant_pn] t>` saying a group
/// changed (facts: whatsmeow notification.go and group.go `parseGroupChange`): members
/// added, removed, promoted, demoted, the subject set, or other settings. The client only
/// needs to know that its cached metadata is stale, and who joined or left; other kinds are
/// kept by tag.
public struct GroupNotification: Sendable, Equatable {
    public enum Change: Sendable, Equatable {
        case add([JID])
        case remove([JID])
        case promote([JID])
        case demote([JID])
        case subject(String)
        /// We were added to a new group: its whole metadata.
        case create(GroupMetadata)
        /// Any other element (`locked`, `announcement`, `ephemeral`, `description`, …).
        case other(String)
    }

    public var group: JID
    /// Who made the change (an admin; a LID in a LID group), when stated.
    public var actor: JID?
    public var changes: [Change]

    /// Most changes read from one notification.
    public static let maxChanges = 64

    /// Throws `client.group_metadata_invalid` for a notification that is not a well-formed `w:gp2`.
    public init(parsing node: Node) throws {
        func invalid(_ why: String) -> WAClientError { WAClientError(.groupMetadataInvalid, "group notification: \(why)") }
        guard node.tag == "notification", node.string("type") == "w:gp2" else { throw invalid("not a w:gp2 notification") }
        guard let from = node.jid("from"), from.server == JID.groupServer, !from.user.isEmpty else {
            throw invalid("from is not a group")
        }
        let children = node.children
        guard children.count <= Self.maxChanges else {
            throw WAClientError(.limitExceeded, "group notification: \(children.count) changes, bound \(Self.maxChanges)")
        }
        func members(_ element: Node) throws -> [JID] {
            let list = element.children("participant")
            guard list.count <= GroupMetadata.maxParticipants else {
                throw WAClientError(.limitExceeded, "group notification: \(list.count) participants")
            }
            return try list.map { participant in
                guard let jid = participant.jid("jid"), !jid.isAD,
                      jid.server == JID.userServer || jid.server == JID.lidServer
                else { throw invalid("<\(element.tag)> participant without a user jid") }
                return jid
            }
        }
        var changes: [Change] = []
        for child in children {
            switch child.tag {
            case "add": changes.append(.add(try members(child)))
            case "remove": changes.append(.remove(try members(child)))
            case "promote": changes.append(.promote(try members(child)))
            case "demote": changes.append(.demote(try members(child)))
            case "subject":
                guard let subject = child.string("subject") else { throw invalid("<subject> without subject") }
                changes.append(.subject(subject))
            case "create":
                guard let group = child.child("group") else { throw invalid("<create> without <group>") }
                var metadata = try GroupMetadata(parsing: group, expected: from)
                // whatsmeow: a create notification may state the addressing mode on the notification.
                if group.string("addressing_mode") == nil, node.string("addressing_mode") == "lid" { metadata.addressingMode = .lid }
                changes.append(.create(metadata))
            default: changes.append(.other(child.tag))
            }
        }
        group = from
        actor = node.jid("participant")
        self.changes = changes
    }
}
