import Foundation
import WABinary
import WASignal

/// LID addressing on the messaging state: the PN↔LID table (`LIDMappingStore`, when the
/// provider has one), the address a DM goes to, PN → LID session migration, and the
/// phone-number form of what is handed to the application.
extension MessagingState {
    /// Where a DM goes and as whom we speak: whatsmeow's send.go sends to the LID of a peer
    /// whose LID it knows (asking usync when it does not), names the number in
    /// `peer_recipient_pn`, and speaks as our own LID.
    struct DirectRoute: Sendable {
        var to: JID
        var peerPN: JID?
        var own: JID
    }

    var lids: (any LIDMappingStore)? { provider as? any LIDMappingStore }

    /// Stores mappings (a store failure is logged: addressing falls back to the phone number)
    /// and moves the sessions of each newly mapped number to its LID.
    func learn(_ mappings: [LIDMapping], store: (any SignalProtocolStore)? = nil) async {
        guard let lids, !mappings.isEmpty else { return }
        do { try await lids.storeLIDMappings(mappings) } catch {
            logger.warning("LID mappings not stored", metadata: ["error": "\(type(of: error))"])
        }
        if let store { for mapping in mappings { await migrateSessions(mapping, store: store) } }
    }

    func lid(forPN pn: JID) async -> JID? {
        guard pn.server == JID.userServer else { return nil }
        return try? await lids?.lid(forPN: pn.nonAD)
    }

    func pn(forLID lid: JID) async -> JID? {
        guard lid.server == JID.lidServer else { return nil }
        return try? await lids?.pn(forLID: lid.nonAD)
    }

    /// Our own LID device (the login's `lid` with our device number), nil before the server told it.
    func ownLID(_ ctx: Context) -> JID? {
        ctx.record.lid.map { JID(user: $0.user, device: ctx.own.device, server: JID.lidServer) }
    }

    func directRoute(_ chat: JID, ctx: Context, client: WAClient) async throws -> DirectRoute {
        guard let ownLID = ownLID(ctx), lids != nil else { return DirectRoute(to: chat, peerPN: nil, own: ctx.own) }
        switch chat.server {
        case JID.lidServer:
            return DirectRoute(to: chat, peerPN: await pn(forLID: chat), own: ownLID)
        case JID.userServer:
            var lid = await lid(forPN: chat)
            if lid == nil { lid = try await devices(of: [chat], client: client)[chat]?.lid }
            guard let lid else { return DirectRoute(to: chat, peerPN: nil, own: ctx.own) }
            return DirectRoute(to: lid, peerPN: chat, own: ownLID)
        default:
            return DirectRoute(to: chat, peerPN: nil, own: ctx.own)
        }
    }

    /// Moves the sessions, identities and sender keys of `mapping.pn`'s devices to its LID,
    /// once per number per process (whatsmeow keeps the same once-only cache).
    func migrateSessions(_ mapping: LIDMapping, store: any SignalProtocolStore) async {
        guard let migrating = store as? any SignalAddressMigrating, notePNMigrated(mapping.pn.user) else { return }
        do {
            let moved = try await migrating.migrateAddresses(
                fromName: mapping.pn.signalAddressUser, toName: mapping.lid.signalAddressUser)
            if moved > 0 { logger.info("signal state moved to LID", metadata: ["entries": "\(moved)"]) }
        } catch {
            forgetPNMigrated(mapping.pn.user)
            logger.warning("signal state not moved to LID", metadata: ["error": "\(type(of: error))"])
        }
    }

    /// The phone-number form of `jid` (device kept) when it is a LID whose number we know.
    func phoneNumberForm(_ jid: JID) async -> JID? {
        guard let pn = await pn(forLID: jid) else { return nil }
        return JID(user: pn.user, device: jid.device, server: JID.userServer)
    }

    /// What the application sees: chat and sender by phone number where known (commands take
    /// numbers, and a contact keeps one identity whichever way the server addressed it), with
    /// the LIDs beside them.
    func presented(_ message: ReceivedMessage) async -> ReceivedMessage {
        var m = message
        if m.sender.server == JID.lidServer {
            m.senderLID = m.sender
            if let pn = await phoneNumberForm(m.sender) {
                m.sender = pn
                m.senderAlt = m.senderLID
            }
        } else if m.sender.server == JID.userServer {
            if let alt = m.senderAlt, alt.server == JID.lidServer { m.senderLID = alt } else if let lid = await lid(forPN: m.sender) {
                m.senderLID = JID(user: lid.user, device: m.sender.device, server: JID.lidServer)
            }
        }
        if !m.isGroup {
            if m.chat.server == JID.lidServer {
                m.chatLID = m.chat
                if let pn = await pn(forLID: m.chat) { m.chat = pn }
            } else if m.chat.server == JID.userServer {
                m.chatLID = await lid(forPN: m.chat)
            }
        }
        return m
    }

    /// A status by phone number where known, like `presented`.
    func presented(_ update: ReceiptEvent.StatusUpdate) async -> ReceiptEvent.StatusUpdate {
        var u = update
        if u.chat.server == JID.lidServer, let pn = await pn(forLID: u.chat) { u.chat = pn }
        if let pn = await phoneNumberForm(u.by) { u.by = pn }
        return u
    }
}

extension MessagingState {
    /// The LID under which to decrypt a stanza whose sender is named by phone number, when its
    /// LID is known (`sender_lid`/`participant_lid`, or the table): whatsmeow keeps sessions of
    /// mapped peers under the LID only.
    func encryptionLID(of stanza: Node) async -> JID? {
        // A client without a PN↔LID table keeps every session by number, both ways.
        guard lids != nil, let from = stanza.jid("from") else { return nil }
        let isGroup = from.server == JID.groupServer || from.server == JID.broadcastServer
        guard let sender = isGroup ? stanza.jid("participant") : from, sender.server == JID.userServer else { return nil }
        if let alt = stanza.jid(isGroup ? "participant_lid" : "sender_lid"), alt.server == JID.lidServer {
            return JID(user: alt.user, device: sender.device, server: JID.lidServer)
        }
        return await lid(forPN: sender).map { JID(user: $0.user, device: sender.device, server: JID.lidServer) }
    }
}

extension MessagingState {
    /// The mapped numbers among `users` (number → LID user) for `MessageSender.lidUsers`, their
    /// Signal state moved to the LID first (once per number).
    func lidUsers(of users: [JID], store: any SignalProtocolStore) async -> [String: String] {
        var out: [String: String] = [:]
        let numbers = users.filter { $0.server == JID.userServer }.map(\.nonAD)
        guard !numbers.isEmpty, let found = try? await lids?.lids(forPNs: numbers) else { return out }
        for user in numbers {
            guard let lid = found[user.user], let mapping = try? LIDMapping(lid, user) else { continue }
            await migrateSessions(mapping, store: store)
            out[user.user] = lid.user
        }
        return out
    }
}
