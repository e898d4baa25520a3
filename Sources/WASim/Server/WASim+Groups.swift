import Foundation
import WABinary
import WAClient
import WAProto
import WASignal

/// Groups on the simulated server: creating them, membership changes (each announced to the
/// members' devices with a `w:gp2` notification, as the real server does), the metadata
/// answer and phones sending to a group. Stanzas come from `GroupServerNodes`, routing from
/// `GroupRouting.swift`.
extension WASim {
    /// Builds group stanzas with the server's view of each member's two addresses.
    var groupNodes: GroupServerNodes {
        let lids = phones.mapValues(\.lidUser)
        return GroupServerNodes { number in
            (JID(user: number, server: JID.userServer), lids[number].map { JID(user: $0, server: JID.lidServer) })
        }
    }

    /// Creates a group of simulated phone users (`creator` first, an admin). Returns `ID@g.us`.
    /// New groups are LID-addressed, as today's WhatsApp makes them; `.phoneNumber` makes the
    /// older kind.
    @discardableResult
    public func createGroup(
        creator: String, participants: [String], subject: String, addressing: SimGroup.Addressing = .lid
    ) throws -> JID {
        guard phones[creator] != nil else { throw SimError.unknownPhone(creator) }
        var members = [creator]
        for number in participants where !members.contains(number) {
            guard phones[number] != nil else { throw SimError.unknownPhone(number) }
            members.append(number)
        }
        guard members.count <= GroupMetadata.maxParticipants else { throw SimError("sim.bad_request", "too many participants") }
        nextGroupID += 1
        let jid = JID(user: String(nextGroupID), server: JID.groupServer)
        let now = nowSeconds
        groups[jid.user] = SimGroup(
            jid: jid, subject: subject, subjectSetAt: now, subjectSetBy: creator, creator: creator, creation: now,
            addressing: addressing, members: members, admins: [creator])
        return jid
    }

    /// The group as the server keeps it (nil when unknown).
    public func group(_ jid: JID) -> SimGroup? { groups[jid.user] }

    private func notify(_ change: GroupServerNodes.Change, in group: SimGroup, to numbers: [String]) async {
        let node = groupNodes.notification(change, in: group, by: group.creator, timestamp: nowSeconds)
        for number in numbers { for device in allDevices(of: number) { await deliver(node, to: device) } }
    }

    private func existingGroup(_ jid: JID) throws -> SimGroup {
        guard let group = groups[jid.user] else { throw SimError("sim.unknown_group", "no group \(jid)") }
        return group
    }

    /// A participant leaves the group: every member's devices (and the one who left) get a
    /// `w:gp2` `<remove>` notification; `notify: false` leaves clients' caches stale (a
    /// notification lost), for the participant-hash path.
    public func removeFromGroup(_ jid: JID, number: String, notify: Bool = true) async throws {
        var group = try existingGroup(jid)
        let before = group.members
        group.members.removeAll { $0 == number }
        group.admins.remove(number)
        group.participantVersion += 1
        groups[jid.user] = group
        if notify { await self.notify(.remove([number]), in: group, to: before) }
    }

    /// A phone user joins the group: the members' devices (the new one's too) get a `w:gp2`
    /// `<add>` notification unless `notify` is false.
    public func addToGroup(_ jid: JID, number: String, notify: Bool = true) async throws {
        var group = try existingGroup(jid)
        guard phones[number] != nil else { throw SimError.unknownPhone(number) }
        guard !group.isMember(number) else { return }
        group.members.append(number)
        group.participantVersion += 1
        groups[jid.user] = group
        if notify { await self.notify(.add([number]), in: group, to: group.members) }
    }

    /// Makes a member an admin (or a plain member again): `w:gp2` `<promote>`/`<demote>`.
    public func setAdmin(_ jid: JID, number: String, admin: Bool) async throws {
        var group = try existingGroup(jid)
        guard group.isMember(number) else { throw SimError("sim.not_in_group", "\(number) is not in \(jid)") }
        if admin { group.admins.insert(number) } else { group.admins.remove(number) }
        groups[jid.user] = group
        await notify(admin ? .promote([number]) : .demote([number]), in: group, to: group.members)
    }

    /// Renames the group: `w:gp2` `<subject>`.
    public func setSubject(_ jid: JID, subject: String) async throws {
        var group = try existingGroup(jid)
        group.subject = subject
        group.subjectSetAt = nowSeconds
        groups[jid.user] = group
        await notify(.subject(subject), in: group, to: group.members)
    }

    /// How many metadata queries (`w:g2`) for `group` the server answered.
    public func groupMetadataQueries(_ group: JID) -> Int { metadataQueries[group.user] ?? 0 }

    /// The answer to a member's metadata query; nil (the connection answers 404) otherwise.
    func groupAnswer(_ query: Node, from device: JID) -> Node? {
        guard let to = query.jid("to"), to.server == JID.groupServer, let group = groups[to.user],
              group.isMember(phoneNumberForm(device).user) else { return nil }
        metadataQueries[to.user, default: 0] += 1
        return groupNodes.metadataAnswer(to: query, group: group)
    }

    /// The phone `number` sends a text to a group it is in: the sender key distribution to every
    /// member device, then the skmsg, addressed as the group is (LIDs in a LID group). Returns
    /// the message id.
    @discardableResult
    public func sendGroupText(from number: String, group jid: JID, text: String, id: String? = nil) async throws -> String {
        guard let phone = phones[number], let agent = agents[number] else { throw SimError.unknownPhone(number) }
        guard let group = groups[jid.user], group.isMember(number) else {
            throw SimError("sim.not_in_group", "\(number) is not in \(jid)")
        }
        let id = id ?? MessageID.random(ownJID: phone.jid)
        let lidGroup = group.addressing == .lid
        let members = group.members.flatMap { allDevices(of: $0) }.map { lidGroup ? lidForm($0) : $0 }
        let own = lidGroup ? phone.lid : phone.jid
        var bundles: [JID: PreKeyBundle] = [:]
        for device in try await agent.needingBundles(members, own: own) {
            if let bundle = await bundle(for: device) { bundles[device] = bundle }
        }
        let node: Node
        do {
            node = try await agent.groupMessage(
                id: id, group: group.jid, text: text, members: members, bundles: bundles, own: own,
                addressing: lidGroup ? .lid : nil)
        } catch {
            throw SimError("sim.send_failed", "phone could not encrypt: \((error as? WAClientError)?.code.rawValue ?? "?")")
        }
        await agent.markSent(id)
        let ack = await routeMessage(node, from: phone.jid)
        if let error = ack.string("error") { throw SimError("sim.send_failed", "routing refused: \(error)") }
        return id
    }
}
