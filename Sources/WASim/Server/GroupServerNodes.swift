import Foundation
import WABinary
import WACrypto

/// What the simulated server writes about groups, built here from its own model and not
/// from the client's code (a builder both sides share cannot catch a client bug): the
/// metadata answer to a `w:g2` query and the `w:gp2` notifications sent when a group
/// changes. Shapes: whatsmeow group.go (`parseGroupNode`, `parseParticipant`,
/// `parseGroupChange`) and notification.go.
struct GroupServerNodes {
    /// A member's two addresses: phone-number JID and LID (user JIDs, no device).
    let addresses: @Sendable (String) -> (pn: JID, lid: JID?)

    /// A member as the group names it: its LID in a LID group (its phone number when it has none).
    func name(_ number: String, in group: SimGroup) -> JID {
        let both = addresses(number)
        return group.addressing == .lid ? (both.lid ?? both.pn) : both.pn
    }

    /// `<participant jid [phone_number|lid] [type]>`: a LID group lists LIDs with each member's
    /// `phone_number`, a phone-number group phone numbers with each member's `lid`.
    func participant(_ number: String, in group: SimGroup, withRole: Bool) -> Node {
        let both = addresses(number)
        var attributes = [Attribute("jid", .jid(name(number, in: group)))]
        if group.addressing == .lid, both.lid != nil {
            attributes.append(Attribute("phone_number", .jid(both.pn)))
        } else if let lid = both.lid {
            attributes.append(Attribute("lid", .jid(lid)))
        }
        if withRole, group.admins.contains(number) {
            attributes.append(Attribute("type", number == group.creator ? "superadmin" : "admin"))
        }
        return Node("participant", attributes)
    }

    /// `<iq type=result from=G id><group id subject s_t s_o creator creation addressing_mode p_v_id size>…`
    func metadataAnswer(to query: Node, group: SimGroup) -> Node {
        var attributes = [
            Attribute("id", .string(group.jid.user)), Attribute("subject", .string(group.subject)),
            Attribute("s_t", .string(String(group.subjectSetAt))), Attribute("s_o", .jid(name(group.subjectSetBy, in: group))),
            Attribute("creator", .jid(name(group.creator, in: group))), Attribute("creation", .string(String(group.creation))),
            Attribute("addressing_mode", .string(group.addressing.rawValue)),
            Attribute("p_v_id", .string(String(group.participantVersion))), Attribute("size", .string(String(group.members.count))),
        ]
        if group.addressing == .lid { attributes.append(Attribute("creator_pn", .jid(addresses(group.creator).pn))) }
        let node = Node("group", attributes, content: .nodes(group.members.map { participant($0, in: group, withRole: true) }))
        return Node("iq", [
            Attribute("from", .jid(group.jid)), Attribute("type", "result"), Attribute("id", .string(query.string("id") ?? "")),
        ], content: .nodes([node]))
    }

    enum Change {
        case add([String]), remove([String]), promote([String]), demote([String])
        case subject(String)
    }

    /// `<notification from=G type=w:gp2 id t participant=actor [participant_pn] [addressing_mode=lid]><add|remove|…/>`
    func notification(_ change: Change, in group: SimGroup, by actor: String?, timestamp: Int) -> Node {
        var attributes = [
            Attribute("from", .jid(group.jid)), Attribute("type", "w:gp2"),
            Attribute("id", .string(String(UInt32.random(in: 1...UInt32.max)))), Attribute("t", .string(String(timestamp))),
        ]
        if let actor {
            attributes.append(Attribute("participant", .jid(name(actor, in: group))))
            if group.addressing == .lid { attributes.append(Attribute("participant_pn", .jid(addresses(actor).pn))) }
        }
        if group.addressing == .lid { attributes.append(Attribute("addressing_mode", "lid")) }
        let version = [Attribute("v_id", .string(String(group.participantVersion)))]
        let child: Node
        switch change {
        case .add(let numbers): child = Node("add", version, content: .nodes(numbers.map { participant($0, in: group, withRole: false) }))
        case .remove(let numbers): child = Node("remove", version, content: .nodes(numbers.map { participant($0, in: group, withRole: false) }))
        case .promote(let numbers): child = Node("promote", version, content: .nodes(numbers.map { participant($0, in: group, withRole: false) }))
        case .demote(let numbers): child = Node("demote", version, content: .nodes(numbers.map { participant($0, in: group, withRole: false) }))
        case .subject(let subject):
            child = Node("subject", [
                Attribute("subject", .string(subject)), Attribute("s_t", .string(String(timestamp))),
                Attribute("s_o", .jid(name(actor ?? group.creator, in: group))),
            ])
        }
        return Node("notification", attributes, content: .nodes([child]))
    }
}
