import BridgeStore
import Foundation
import Logging
import WAClient

/// What a device keeps of its phone's history sync: the worker's defaults
/// (`WABRIDGE_HISTORY_DAYS`, `WABRIDGE_HISTORY_MAX_MESSAGES`, `WABRIDGE_HISTORY_EVENTS`) with the
/// device's own overrides (`DeviceSettings.History`, `PATCH /devices/{id}/settings`) applied.
public struct HistorySettings: Sendable, Equatable {
    /// How many historical messages a device's `history.sqlite` keeps, and how old.
    public var bounds: HistoryBounds
    /// Publish each stored historical message as `message.received` with `"historical": true`.
    public var publishMessages: Bool

    public init(bounds: HistoryBounds = HistoryBounds(), publishMessages: Bool = false) {
        self.bounds = bounds
        self.publishMessages = publishMessages
    }

    /// The client-side bounds: a chunk never hands over more than the device keeps.
    func apply(to configuration: inout MessagingFeature.Configuration) {
        configuration.historyMaxAge = bounds.maxAge
        configuration.historyMaxMessages = bounds.maxMessages
    }
}

extension DeviceActor {
    /// New settings from the admin API. The store bounds and events follow from the next chunk;
    /// the client's own per-chunk trimming is set when the client is made, so a larger bound
    /// reaches it at the next connection (history sync runs right after linking, when the
    /// settings are normally already set).
    func apply(history settings: HistorySettings) {
        history = settings
    }

    /// The `onHistory` of the device's `MessagingFeature`: a chunk's conversations, messages and
    /// push names go to `history.sqlite` (bounded), then its `history.sync` event (and, when
    /// asked, a `message.received` per new historical message) into the outbox. A chunk that
    /// could not be read is a `history.sync` event with its error; the device stays connected.
    static func historyHandler(
        id: DeviceID, jid: JIDCache, data: any DeviceDataStoring, recorder: any EventRecording,
        settings current: @escaping @Sendable () async -> HistorySettings, logger: Logger
    ) -> MessagingFeature.HistoryHandler {
        { chunk in
            let settings = await current()
            var stored: HistorySyncStored?
            var failure: (code: String, cause: String)?
            var events: [CloudEvent] = []
            switch chunk.outcome {
            case .success(let content):
                var conversations: [HistoryConversationRecord] = []
                var messages: [HistoryMessage] = []
                for conversation in content.conversations {
                    conversations.append(HistoryConversationRecord(
                        chat: conversation.chat.description, chatLID: conversation.chatLID?.description, name: conversation.name,
                        lastMessageAt: conversation.lastMessageAt.map { Int64($0.timeIntervalSince1970) },
                        unreadCount: Int(conversation.unreadCount)))
                    for message in conversation.messages {
                        let event = EventFactory.received(message, device: id, jid: jid.jid, historical: true)
                        messages.append(EventFactory.historyMessage(message, data: event.data, status: "history"))
                        if settings.publishMessages { events.append(event) }
                    }
                }
                let names = content.pushNames.map { PushNameRecord(jid: $0.jid.description, name: $0.name) }
                do {
                    stored = try await data.saveHistorySync(
                        conversations: conversations, messages: messages, pushNames: names, bounds: settings.bounds)
                } catch {
                    failure = ("HISTORY_STORE_FAILED", EventFactory.errorCode(error))
                    events = []
                }
            case .failure(let error):
                failure = (EventFactory.historyFailureCode(error.code), error.code.rawValue)
            }
            if let failure {
                logger.warning("history sync chunk not stored", metadata: [
                    "type": "\(chunk.syncType)", "chunk": "\(chunk.chunkOrder)", "code": "\(failure.code)", "cause": "\(failure.cause)",
                ])
            }
            events.append(EventFactory.historySync(chunk, stored: stored, failure: failure, device: id, jid: jid.jid))
            do { try await recorder.record(contentsOf: events) } catch {
                logger.error("history sync events not recorded", metadata: ["code": "\(EventFactory.errorCode(error))"])
            }
        }
    }
}
