import Foundation
import WABinary
import WAClient
import WACrypto
import WAProto
import WASignal

/// One history-sync chunk a simulated phone sent: its peer message, its notification and what its blob holds.
public struct SimHistoryChunk: Sendable {
    /// The chunks the phone sends after linking, in order (whatsmeow's order of sync types).
    public enum Kind: String, Sendable, CaseIterable {
        /// Recent messages of the chats, the NCT salt and the PN↔LID mappings: inline and on the media host.
        case initialBootstrap = "initial_bootstrap"
        /// Older messages of the same chats: on the media host only.
        case recent
        /// The contacts' push names: on the media host only.
        case pushName = "push_name"
    }

    public let kind: Kind
    public let messageID: String
    public let notification: WAE2E_HistorySyncNotification
    public let history: WAHistorySync_HistorySync
}

/// What a simulated phone sent a device it just linked, for tests (and the sync issue) to check.
public struct SimInitialSync: Sendable {
    /// The `protocolMessage{appStateSyncKeyShare}` peer message.
    public let keyShareID: String
    public let keys: [WAE2E_AppStateSyncKey]
    /// Every history-sync chunk, in the order sent (`initialBootstrap`, `recent`, `pushName`).
    public let chunks: [SimHistoryChunk]
    /// The first chunk's `protocolMessage{historySyncNotification}` peer message.
    public var historyNotificationID: String { chunks[0].messageID }
    public var notification: WAE2E_HistorySyncNotification { chunks[0].notification }
    /// The history the first uploaded blob holds (before zlib and media encryption).
    public var history: WAHistorySync_HistorySync { chunks[0].history }

    public func chunk(_ kind: SimHistoryChunk.Kind) -> SimHistoryChunk? { chunks.first { $0.kind == kind } }

    /// Every message the phone's history held, over all chunks.
    public var messages: [(chat: String, message: WAWeb_WebMessageInfo)] {
        chunks.flatMap { chunk in
            chunk.history.conversations.flatMap { c in c.messages.map { (c.id, $0.message) } }
        }
    }
}

/// A real phone, right after linking a companion, sends it (as `category=peer` messages from
/// device 0, encrypted for that one device) the app-state sync keys and history-sync
/// notifications whose blobs it uploaded to the media host: the HistorySync proto, zlib-deflated,
/// encrypted with media type "WhatsApp History Keys", mms type `md-msg-hist` (whatsmeow
/// message.go handleProtocolMessage / DownloadHistorySync, download.go). The first chunk
/// (INITIAL_BOOTSTRAP) is also inline in its notification; later ones (RECENT, PUSH_NAME) are
/// only on the media host. The chats are the phone's DMs with every other phone of the simulator
/// (texts both ways) and one group with up to three of them.
extension WASim {
    static var appStateKeysShared: Int { appStateKeyCount }

    /// Builds, uploads and queues the phone's initial sync for `device` (delivered at its next login).
    func sendInitialSync(phone number: String, to device: JID) async {
        guard let phone = phones[number], let agent = agents[number], let record = devices[device] else { return }
        do {
            // The phone's app state exists before the link: uploaded (once) before the keys go out.
            await uploadInitialAppState(phone: number, excluding: device)
            var share = WAE2E_AppStateSyncKeyShare()
            share.keys = appStateKeysToShare(number).map { key in
                var key = key
                key.keyData.fingerprint.deviceIndexes = [0, record.keyIndex]
                return key
            }
            var shareMessage = WAE2E_Message()
            shareMessage.protocolMessage.type = .appStateSyncKeyShare
            shareMessage.protocolMessage.appStateSyncKeyShare = share

            var bundles: [JID: PreKeyBundle] = [:]
            if try await agent.needingBundles([device]).contains(device), let bundle = await bundle(for: device) {
                bundles[device] = bundle
            }
            let shareID = MessageID.random(ownJID: phone.jid)
            let shareNode = try await agent.peerMessage(id: shareID, to: device, message: shareMessage, bundles: bundles)
            await routePeerMessage(shareNode, from: phone.jid, pushPriority: "high")

            let now = Int64(Date().timeIntervalSince1970)
            var chunks: [SimHistoryChunk] = []
            for (index, (kind, history)) in historyChunks(for: phone, now: now).enumerated() {
                let inflated: Data = try history.serializedBytes()
                // zlib format with header (Go's zlib.NewReader), as TransportPayload compresses.
                let deflated = Data(try TransportPayload.encodeCompressed(inflated).dropFirst())
                let mediaKey = Symmetric.randomBytes(32)
                let blob = try MediaCipher.encrypt(deflated, keys: MediaKeys(mediaKey: mediaKey, type: .history))
                let directPath = await media.store(blob, kind: "md-msg-hist")
                if configuration.corruptedHistoryChunk == kind { _ = await media.corrupt(directPath, at: blob.count / 2) }
                var notification = WAE2E_HistorySyncNotification()
                notification.fileSha256 = Symmetric.sha256(deflated)
                notification.fileLength = UInt64(deflated.count)
                notification.mediaKey = mediaKey
                notification.fileEncSha256 = Symmetric.sha256(blob)
                notification.directPath = directPath
                notification.syncType = WAE2E_HistorySyncType(rawValue: history.syncType.rawValue) ?? .initialBootstrap
                notification.chunkOrder = history.chunkOrder
                notification.progress = history.progress
                // Today's phones put the initial bootstrap inline too (whatsmeow reads it before any download).
                if kind == .initialBootstrap { notification.initialHistBootstrapInlinePayload = deflated }
                var historyMessage = WAE2E_Message()
                historyMessage.protocolMessage.type = .historySyncNotification
                historyMessage.protocolMessage.historySyncNotification = notification
                let historyID = MessageID.random(ownJID: phone.jid)
                let historyNode = try await agent.peerMessage(id: historyID, to: device, message: historyMessage, bundles: [:])
                await routePeerMessage(historyNode, from: phone.jid, pushPriority: index == 0 ? "high_force" : "high")
                chunks.append(SimHistoryChunk(kind: kind, messageID: historyID, notification: notification, history: history))
            }
            initialSyncs[device] = SimInitialSync(keyShareID: shareID, keys: share.keys, chunks: chunks)
            logger.info("phone sent the initial sync", metadata: [
                "device": "\(device)", "keys": "\(share.keys.count)", "history_chunks": "\(chunks.count)",
            ])
        } catch {
            logger.warning("phone could not send the initial sync", metadata: ["device": "\(device)", "error": "\(type(of: error))"])
        }
    }

    /// The phone's history, cut as a phone cuts it: recent messages first (with the keys a
    /// companion needs at once), older ones next, push names last.
    private func historyChunks(for phone: SimPhone, now: Int64) -> [(SimHistoryChunk.Kind, WAHistorySync_HistorySync)] {
        let others = phones.values.filter { $0.number != phone.number }.sorted { $0.number < $1.number }
        // (chat, messages): texts both ways with timestamps; `age` in seconds before now.
        struct Line { let fromMe: Bool; let sender: SimPhone?; let age: Int64; let text: String }
        var chats: [(id: String, name: String?, lines: [Line])] = []
        for other in others {
            chats.append((other.jid.description, nil, [
                Line(fromMe: false, sender: other, age: 30 * 86_400, text: "old news from \(other.pushName)"),
                Line(fromMe: true, sender: nil, age: 2 * 86_400, text: "see you on Friday"),
                Line(fromMe: false, sender: other, age: 2 * 86_400 - 60, text: "Friday it is"),
                Line(fromMe: false, sender: other, age: 3_600, text: "hello from \(other.pushName)"),
                Line(fromMe: true, sender: nil, age: 3_540, text: "hi \(other.pushName), good to hear"),
            ]))
        }
        if !others.isEmpty {
            let members = Array(others.prefix(3))
            var lines = [Line(fromMe: true, sender: nil, age: 86_400 + 600, text: "welcome to the group")]
            for (i, member) in members.enumerated() {
                lines.append(Line(fromMe: false, sender: member, age: 86_400 - Int64(i) * 60, text: "thanks, \(member.pushName) here"))
            }
            lines.append(Line(fromMe: true, sender: nil, age: 1_800, text: "meeting at noon"))
            chats.append(("120363900000\(phone.number.suffix(6))@g.us", "Simulated group", lines))
        }
        func conversation(_ chat: (id: String, name: String?, lines: [Line]), _ keep: (Line) -> Bool) -> WAHistorySync_Conversation {
            var conversation = WAHistorySync_Conversation()
            conversation.id = chat.id
            if let name = chat.name { conversation.name = name }
            let isGroup = chat.id.hasSuffix("@g.us")
            var order: UInt64 = 0
            for line in chat.lines where keep(line) {
                var info = WAWeb_WebMessageInfo()
                info.key.remoteJid = chat.id
                info.key.fromMe = line.fromMe
                info.key.id = MessageID.random(ownJID: phone.jid)
                if isGroup, let sender = line.sender { info.key.participant = sender.jid.description }
                info.message.conversation = line.text
                info.messageTimestamp = UInt64(now - line.age)
                info.status = line.fromMe ? .read : .deliveryAck
                if let sender = line.sender { info.pushName = sender.pushName }
                order += 1
                var entry = WAHistorySync_HistorySyncMsg()
                entry.message = info
                entry.msgOrderID = order
                conversation.messages.append(entry)
            }
            conversation.lastMsgTimestamp = UInt64(now - (chat.lines.map(\.age).min() ?? 0))
            conversation.conversationTimestamp = conversation.lastMsgTimestamp
            return conversation
        }

        var bootstrap = WAHistorySync_HistorySync()
        bootstrap.syncType = .initialBootstrap
        bootstrap.chunkOrder = 1
        bootstrap.progress = 40
        bootstrap.nctSalt = nctSalt(for: phone.number)
        bootstrap.conversations = chats.map { conversation($0) { $0.age < 86_400 * 3 / 2 } }
        for other in phones.values.sorted(by: { $0.number < $1.number }) {
            var mapping = WAHistorySync_PhoneNumberToLIDMapping()
            mapping.pnJid = other.jid.description
            mapping.lidJid = other.lid.description
            bootstrap.phoneNumberToLidMappings.append(mapping)
        }
        var recent = WAHistorySync_HistorySync()
        recent.syncType = .recent
        recent.chunkOrder = 2
        recent.progress = 80
        recent.conversations = chats.map { conversation($0) { $0.age >= 86_400 * 3 / 2 } }.filter { !$0.messages.isEmpty }
        var names = WAHistorySync_HistorySync()
        names.syncType = .pushName
        names.chunkOrder = 3
        names.progress = 100
        for other in phones.values.sorted(by: { $0.number < $1.number }) {
            var name = WAHistorySync_Pushname()
            name.id = other.jid.description
            name.pushname = other.pushName
            names.pushnames.append(name)
        }
        return [(.initialBootstrap, bootstrap), (.recent, recent), (.pushName, names)]
    }

    /// What the phone sent `device` after linking it (nil before, or when the rule is off).
    public func initialSync(sentTo device: JID) -> SimInitialSync? { initialSyncs[device] }

    /// The phone's NCT salt (stable per phone): history sync carries it for cstoken.
    func nctSalt(for number: String) -> Data {
        if let salt = nctSalts[number] { return salt }
        let salt = Symmetric.randomBytes(32)
        nctSalts[number] = salt
        return salt
    }

    /// A peer message (`category=peer`, one `<enc>`, to one of the sender's own devices): the
    /// server delivers it to that device alone, keeping `category` and `push_priority`.
    func routePeerMessage(_ sent: Node, from sender: JID, pushPriority: String?) async {
        guard let to = sent.jid("to"), to.user == sender.user, to.server == sender.server, to != sender,
              let id = sent.string("id"), let enc = sent.child("enc") else { return }
        var attributes = [
            Attribute("from", .jid(sender)), Attribute("id", .string(id)), Attribute("t", .string(String(nowSeconds))),
            Attribute("type", .string(sent.string("type") ?? "text")), Attribute("category", "peer"),
        ]
        if let pushPriority { attributes.append(Attribute("push_priority", .string(pushPriority))) }
        await deliver(Node("message", attributes, content: .nodes([enc])), to: to)
    }
}

extension SimPhoneAgent {
    /// `<message to=device id type=text category=peer><enc/></message>`: `message` encrypted for one of
    /// the phone's own devices, not wrapped as a DeviceSentMessage.
    func peerMessage(id: String, to device: JID, message: WAE2E_Message, bundles: [JID: PreKeyBundle]) async throws -> Node {
        await beginSignalTurn()
        defer { endSignalTurn() }
        let out = try await sender(deviceIdentity: Data()).directMessage(
            id: id, to: device.nonAD, message: message, recipientDevices: [device], ownDevices: [], bundles: bundles)
        guard let enc = out.node.child("participants")?.children("to").first(where: { $0.jid("jid") == device })?.child("enc") else {
            throw out.skipped[device] ?? WAClientError(.messageEncryptFailed, "peer message not encrypted")
        }
        return Node("message", [
            Attribute("to", .jid(device)), Attribute("id", .string(id)), Attribute("type", "text"), Attribute("category", "peer"),
        ], content: .nodes([enc]))
    }
}
