import Foundation
import WABinary
import WAClient

/// The server's side of a `<message to=G@g.us>`: who may send, in which addressing form,
/// and the one stanza per member device it becomes. Built from the simulator's own group
/// model, independent of the client's builders.
///
/// Rules (each refusal is an `<ack error>` and nothing is delivered, as the real server
/// does not deliver a stanza it cannot route):
/// * the group exists (404) and the sender is a member (403);
/// * a LID group's send says `addressing_mode=lid` and names every device of its sender key
///   distribution (`<participants><to jid>`) by LID; a phone-number group's send has no
///   `addressing_mode=lid` and names devices by phone number (400 otherwise): a stanza
///   addressed in the wrong form would reach no one;
/// * a group message carries one `<enc type=skmsg>` (400 without), except a resend after a
///   retry receipt, which carries `participant` (the device that asked, in the group's
///   form; 400 otherwise), its `<enc>` and no `addressing_mode` (whatsmeow retry.go);
/// * at most `maxGroupTargets` devices in `<participants>`.
///
/// Each member device but the sender's gets
/// `<message from=G participant=<sender in the group's form> [participant_pn|participant_lid]
///  [addressing_mode=lid] id t type [edit] [notify]>` with its own `<enc>` (the SKDM) when it
/// has one, then the skmsg (and the sender's `<device-identity>` with a pkmsg). The ack's
/// `phash` covers every member device in the group's form, as the client must compute it.
extension WASim {
    /// Most `<to>` entries read from one group send: the largest groups WhatsApp makes
    /// (5,000 members, community announcement groups) with a phone and four companions each.
    static let maxGroupTargets = 25_000

    enum GroupRefusal {
        static let unknownGroup = 404
        static let notMember = 403
        static let malformed = 400
    }

    struct GroupRoute {
        var ack: Node
        var deliveries: [(device: JID, node: Node)]
    }

    func routeGroupMessage(_ sent: Node, from sender: JID, timestamp: Int) -> GroupRoute {
        func refuse(_ code: Int) -> GroupRoute { GroupRoute(ack: groupAck(for: sent, timestamp: timestamp, error: code), deliveries: []) }
        guard let to = sent.jid("to"), let id = sent.string("id"), !id.isEmpty else { return refuse(GroupRefusal.malformed) }
        guard let group = groups[to.user] else { return refuse(GroupRefusal.unknownGroup) }
        let senderPN = phoneNumberForm(sender)
        guard group.isMember(senderPN.user) else { return refuse(GroupRefusal.notMember) }
        let lidGroup = group.addressing == .lid
        let wanted = lidGroup ? JID.lidServer : JID.userServer
        func inForm(_ device: JID) -> JID { lidGroup ? lidForm(device) : device }
        let targets = sent.child("participants")?.children("to") ?? []
        // A resend names its one device in `participant` and (whatsmeow retry.go) no addressing_mode.
        let resendTo = targets.isEmpty ? sent.jid("participant") : nil
        let stated = sent.string("addressing_mode")
        guard resendTo != nil || (lidGroup ? stated == "lid" : (stated == nil || stated == "pn")) else {
            return refuse(GroupRefusal.malformed)
        }

        guard targets.count <= Self.maxGroupTargets else { return refuse(GroupRefusal.malformed) }
        var perDevice: [JID: Node] = [:]
        perDevice.reserveCapacity(targets.count)
        for target in targets {
            guard let device = target.jid("jid"), device.server == wanted, let enc = target.child("enc") else {
                return refuse(GroupRefusal.malformed)
            }
            perDevice[phoneNumberForm(device)] = enc
        }
        let encs = sent.children("enc")
        let skmsgs = encs.filter { $0.string("type") == "skmsg" }
        let members = group.members.flatMap { allDevices(of: $0) }
        let memberSet = Set(members)

        var deliveries: [(device: JID, node: Node)] = []
        func header(for device: JID) -> [Attribute] {
            var attributes = [Attribute("from", .jid(group.jid)), Attribute("participant", .jid(inForm(senderPN)))]
            if lidGroup {
                attributes.append(Attribute("participant_pn", .jid(senderPN)))
                attributes.append(Attribute("addressing_mode", "lid"))
            } else if lidForm(senderPN).server == JID.lidServer {
                attributes.append(Attribute("participant_lid", .jid(lidForm(senderPN))))
            }
            attributes += [
                Attribute("id", .string(id)), Attribute("t", .string(String(timestamp))),
                Attribute("type", .string(sent.string("type") ?? "text")),
            ]
            if let edit = sent["edit"] { attributes.append(Attribute("edit", edit)) }
            if let name = phones[senderPN.user]?.pushName { attributes.append(Attribute("notify", .string(name))) }
            return attributes
        }
        let identity = sent.child("device-identity")
        func withIdentity(_ children: [Node]) -> [Node] {
            guard let identity, children.contains(where: { $0.string("type") == "pkmsg" }) else { return children }
            return children + [identity]
        }

        if let asked = resendTo {
            // A resend after a retry receipt: the one device that asked, its `<enc>` only.
            let device = phoneNumberForm(asked)
            guard asked.server == wanted, memberSet.contains(device), device != senderPN, !encs.isEmpty, skmsgs.isEmpty else {
                return refuse(GroupRefusal.malformed)
            }
            deliveries.append((device, Node("message", header(for: device), content: .nodes(withIdentity(encs)))))
        } else {
            guard skmsgs.count == 1, let skmsg = skmsgs.first else { return refuse(GroupRefusal.malformed) }
            for device in members where device != senderPN {
                var children: [Node] = []
                if let enc = perDevice[device] { children.append(enc) }
                children.append(skmsg)
                deliveries.append((device, Node("message", header(for: device), content: .nodes(withIdentity(children)))))
            }
        }
        let phash = ParticipantHash.v2(members.map(inForm))
        return GroupRoute(ack: groupAck(for: sent, timestamp: timestamp, phash: phash), deliveries: deliveries)
    }

    /// A receipt for a group message (`to=G participant=<author device>`) as the author's
    /// devices get it: `from=G participant=<the receipting device in the group's form>`
    /// (`participant_pn` too in a LID group), to the one author device named or, for a
    /// device-0 author, every device of that user but the receipting one.
    func routeGroupReceipt(_ receipt: Node, from device: JID, timestamp: Int) -> [(JID, Node)] {
        guard let to = receipt.jid("to"), let group = groups[to.user], let author = receipt.jid("participant") else { return [] }
        let lidGroup = group.addressing == .lid
        let receipting = phoneNumberForm(device)
        guard group.isMember(receipting.user) else { return [] }
        var attributes = [
            Attribute("from", .jid(group.jid)), Attribute("participant", .jid(lidGroup ? lidForm(receipting) : receipting)),
        ]
        if lidGroup { attributes.append(Attribute("participant_pn", .jid(receipting))) }
        attributes += receipt.attributes.filter { !["to", "participant", "from", "participant_pn", "participant_lid"].contains($0.key) }
        if receipt["t"] == nil { attributes.append(Attribute("t", .string(String(timestamp)))) }
        let forwarded = Node("receipt", attributes, content: receipt.content)
        let target = phoneNumberForm(author)
        let targets = target.device != 0 ? [target] : allDevices(of: target.user)
        return targets.filter { $0 != device && $0 != receipting }.map { ($0, forwarded) }
    }

    /// `<ack class=message id from=G t [phash] [error]>`.
    func groupAck(for sent: Node, timestamp: Int, phash: String? = nil, error: Int? = nil) -> Node {
        var attributes = [Attribute("class", "message"), Attribute("id", .string(sent.string("id") ?? ""))]
        if let to = sent["to"] { attributes.append(Attribute("from", to)) }
        attributes.append(Attribute("t", .string(String(timestamp))))
        if let phash { attributes.append(Attribute("phash", .string(phash))) }
        if let error { attributes.append(Attribute("error", .string(String(error)))) }
        return Node("ack", attributes)
    }
}
