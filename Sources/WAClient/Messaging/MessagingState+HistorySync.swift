import Foundation
import WABinary
import WAProto
import WASignal

/// One history-sync chunk the phone sent (whatsmeow message.go DownloadHistorySync): read from the
/// notification's inline payload when it carries one, else downloaded from the media host
/// (`md-msg-hist`, "WhatsApp History Keys"), checked, decrypted, inflated and parsed. The NCT salt,
/// PN↔LID mappings and privacy tokens are stored by the messaging state itself; conversations,
/// messages and push names go to `MessagingFeature.onHistory` for the application to keep.
public struct HistorySyncChunk: Sendable {
    public enum Source: String, Sendable { case inline, download }

    /// The id of the peer message that carried the notification.
    public var notificationID: String
    /// `initial_bootstrap`, `recent`, `full`, `push_name`, `non_blocking_data`, `on_demand`, …
    public var syncType: String
    public var chunkOrder: UInt32
    /// 0…100 when the phone said.
    public var progress: UInt32?
    public var source: Source
    /// What the chunk held, or why it could not be read (a typed error: `client.media_*` for the
    /// download, `client.payload_*` for inflating and parsing).
    public var outcome: Result<HistorySyncContent, WAClientError>
}

/// The application's part of a history-sync chunk, within `MessagingFeature.Configuration`'s bounds.
public struct HistorySyncContent: Sendable {
    public var conversations: [HistoryConversation]
    public var pushNames: [HistoryPushName]
    /// PN↔LID pairs the chunk carried (already learned by the client).
    public var mappings: Int
    /// Messages the chunk held that were left out by the bounds (too old, over the count).
    public var messagesDropped: Int
}

public struct HistoryConversation: Sendable {
    /// The chat: a user (by phone number where known) or a group.
    public var chat: JID
    /// The chat's LID, for a 1:1 chat whose LID is known.
    public var chatLID: JID?
    public var name: String?
    public var lastMessageAt: Date?
    public var unreadCount: UInt32
    /// Its messages within the bounds, oldest first; `ReceivedMessage` as live messages are
    /// presented (chat and sender by phone number where known).
    public var messages: [ReceivedMessage]
}

public struct HistoryPushName: Sendable, Equatable {
    public var jid: JID
    public var name: String
}

extension MessagingState {
    /// A history-sync notification from our phone. The inline payload is read here, before the
    /// stanza is acknowledged (its salt and tokens are what a first DM of this login needs);
    /// a download runs in a task, as an IQ (`media_conn`) cannot be answered while the read loop
    /// waits. Chunks are handed over one after another, in the order they came.
    func receiveHistoryNotification(_ notification: WAE2E_HistorySyncNotification, id: String, client: WAClient) async {
        let syncType = Self.syncTypeName(notification.syncType.rawValue)
        if notification.hasInitialHistBootstrapInlinePayload {
            let outcome: Result<HistorySyncContent, WAClientError>
            do {
                let history = try Self.decodeHistory(notification.initialHistBootstrapInlinePayload)
                outcome = .success(await applyHistory(history, client: client))
            } catch {
                outcome = .failure(Self.historyError(error))
            }
            let chunk = HistorySyncChunk(notificationID: id, syncType: syncType, chunkOrder: notification.chunkOrder,
                                         progress: notification.hasProgress ? notification.progress : nil,
                                         source: .inline, outcome: outcome)
            enqueueHistory { _ in chunk }
            return
        }
        let limit = Self.maxHistoryBlob
        enqueueHistory { state in
            let outcome: Result<HistorySyncContent, WAClientError>
            do {
                let media = await state.historyMedia(client)
                let deflated = try await media.downloadHistory(notification, limit: limit)
                let history = try Self.decodeHistory(deflated)
                outcome = .success(await state.applyHistory(history, client: client))
            } catch {
                outcome = .failure(Self.historyError(error))
            }
            return HistorySyncChunk(notificationID: id, syncType: syncType, chunkOrder: notification.chunkOrder,
                                    progress: notification.hasProgress ? notification.progress : nil,
                                    source: .download, outcome: outcome)
        }
    }

    /// Runs `make` after the chunks queued before it, then hands its chunk over.
    private func enqueueHistory(_ make: @escaping @Sendable (MessagingState) async -> HistorySyncChunk) {
        let previous = historyTail
        historyTail = Task { [weak self] in
            await previous?.value
            guard let self else { return }
            let chunk = await make(self)
            await self.handOverHistory(chunk)
        }
    }

    private func handOverHistory(_ chunk: HistorySyncChunk) async {
        switch chunk.outcome {
        case .success(let content):
            logger.info("history sync chunk read", metadata: [
                "type": "\(chunk.syncType)", "chunk": "\(chunk.chunkOrder)", "source": "\(chunk.source.rawValue)",
                "conversations": "\(content.conversations.count)", "push_names": "\(content.pushNames.count)",
            ])
        case .failure(let error):
            logger.warning("history sync chunk not read", metadata: [
                "type": "\(chunk.syncType)", "chunk": "\(chunk.chunkOrder)", "source": "\(chunk.source.rawValue)",
                "error": "\(error.code.rawValue)",
            ])
        }
        historyChunksHandled += 1
        await onHistory?(chunk)
    }

    /// Waits for the chunks queued so far (tests).
    func historySettled() async { await historyTail?.value }

    /// A media transfer for one download (not kept: it holds the client, which holds this state).
    func historyMedia(_ client: WAClient) -> MediaTransfer {
        var configuration = MediaTransfer.Configuration()
        configuration.scheme = client.configuration.mediaScheme
        configuration.maxDownloadBytes = Self.maxHistoryBlob
        return MediaTransfer(client: client, configuration: configuration)
    }

    /// zlib-inflates (bounded) and parses a history-sync blob.
    static func decodeHistory(_ deflated: Data) throws -> WAHistorySync_HistorySync {
        let inflated = try TransportPayload.inflateZlib(deflated, maxSize: maxInlineHistory)
        do { return try WAHistorySync_HistorySync(serializedBytes: inflated) } catch {
            throw WAClientError(.payloadMalformed, "history sync payload does not parse")
        }
    }

    static func historyError(_ error: any Error) -> WAClientError {
        (error as? WAClientError) ?? WAClientError(.mediaTransferFailed, "history sync failed: \(type(of: error))")
    }

    /// Stores what the client keeps (mappings, salt, tokens) and maps the rest for the application.
    func applyHistory(_ history: WAHistorySync_HistorySync, client: WAClient) async -> HistorySyncContent {
        let mappings: Int
        do { mappings = try await ingestHistory(history) } catch {
            mappings = 0
            logger.warning("history sync keys not stored", metadata: ["error": "\(Self.historyError(error).code.rawValue)"])
        }
        let own = await client.device?.jid?.nonAD
        let cutoff = configuration.historyMaxAge.map { Date().addingTimeInterval(-$0) }
        let conversationsIn = Array(history.conversations.prefix(Self.maxHistoryEntries))
        // The count bound keeps the chunk's newest messages, whichever chats they are in.
        var candidates: [(conversation: Int, message: Int, timestamp: UInt64)] = []
        var dropped = 0
        var seen = 0
        for (c, conversation) in conversationsIn.enumerated() {
            for (m, entry) in conversation.messages.enumerated() {
                guard seen < Self.maxHistoryEntries else { dropped += 1; continue }
                seen += 1
                guard entry.hasMessage, !entry.message.key.id.isEmpty else { dropped += 1; continue }
                let timestamp = entry.message.messageTimestamp
                if let cutoff, Date(timeIntervalSince1970: TimeInterval(timestamp)) < cutoff { dropped += 1; continue }
                candidates.append((c, m, timestamp))
            }
        }
        candidates.sort { $0.timestamp > $1.timestamp }
        let budget = max(configuration.historyMaxMessages, 0)
        if candidates.count > budget {
            dropped += candidates.count - budget
            candidates.removeLast(candidates.count - budget)
        }
        var kept: [Int: [Int]] = [:]
        for candidate in candidates { kept[candidate.conversation, default: []].append(candidate.message) }
        var conversations: [HistoryConversation] = []
        for (c, conversation) in conversationsIn.enumerated() {
            guard let original = JID(conversation.id), !original.user.isEmpty else { continue }
            var chat = original
            let isGroup = chat.server == JID.groupServer
            var chatLID: JID?
            if chat.server == JID.lidServer {
                chatLID = chat
                if let pn = await pn(forLID: chat) { chat = pn }
            } else if chat.server == JID.userServer {
                chatLID = await lid(forPN: chat)
            }
            var messages: [ReceivedMessage] = []
            for m in kept[c] ?? [] {
                guard let message = await historicalMessage(conversation.messages[m].message, chat: original, isGroup: isGroup, own: own) else {
                    dropped += 1
                    continue
                }
                messages.append(message)
            }
            messages.sort { $0.timestamp < $1.timestamp }
            conversations.append(HistoryConversation(
                chat: chat, chatLID: chatLID, name: conversation.hasName && !conversation.name.isEmpty ? conversation.name : nil,
                lastMessageAt: conversation.lastMsgTimestamp > 0 ? Date(timeIntervalSince1970: TimeInterval(conversation.lastMsgTimestamp)) : nil,
                unreadCount: conversation.unreadCount, messages: messages))
        }
        var pushNames: [HistoryPushName] = []
        for entry in history.pushnames.prefix(Self.maxHistoryEntries) {
            guard let jid = JID(entry.id), !entry.pushname.isEmpty, entry.pushname.count <= Self.maxPushNameLength else { continue }
            let user = jid.server == JID.lidServer ? (await pn(forLID: jid) ?? jid) : jid
            pushNames.append(HistoryPushName(jid: user.nonAD, name: entry.pushname))
        }
        return HistorySyncContent(conversations: conversations, pushNames: pushNames, mappings: mappings, messagesDropped: dropped)
    }

    /// A stored message (`WebMessageInfo`) as a `ReceivedMessage`: the sender is us for our own,
    /// the chat for a 1:1 chat, the key's (or the info's) participant in a group.
    private func historicalMessage(_ info: WAWeb_WebMessageInfo, chat: JID, isGroup: Bool, own: JID?) async -> ReceivedMessage? {
        let key = info.key
        let sender: JID?
        if key.fromMe {
            sender = own
        } else if !isGroup {
            sender = chat
        } else if key.hasParticipant, !key.participant.isEmpty {
            sender = JID(key.participant)
        } else {
            sender = info.hasParticipant ? JID(info.participant) : nil
        }
        guard let sender else { return nil }
        let message = info.hasMessage ? info.message : WAE2E_Message()
        let received = ReceivedMessage(
            id: key.id, chat: chat, sender: sender, isFromMe: key.fromMe, isGroup: isGroup,
            timestamp: Date(timeIntervalSince1970: TimeInterval(info.messageTimestamp)),
            pushName: info.hasPushName && !info.pushName.isEmpty ? info.pushName : nil,
            content: MessageContent(message), message: message, identityChange: nil,
            addressingMode: sender.server == JID.lidServer ? .lid : .phoneNumber)
        return await presented(received)
    }

    static func syncTypeName(_ raw: Int) -> String {
        switch raw {
        case 0: "initial_bootstrap"
        case 1: "initial_status_v3"
        case 2: "full"
        case 3: "recent"
        case 4: "push_name"
        case 5: "non_blocking_data"
        case 6: "on_demand"
        default: "unknown"
        }
    }

    /// Largest history blob downloaded (deflated, encrypted); its inflated form is bounded by `maxInlineHistory`.
    static let maxHistoryBlob = 16 << 20
    static let maxPushNameLength = 256
}
