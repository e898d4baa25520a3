import BridgeStore
import Foundation
import WABinary
import WAClient
import WACrypto
import WAProto
import WASignal

/// Turns what a device reports (`DeviceEvent`, `ReceivedMessage`, status
/// updates) into CloudEvents with the `data` of `schemas/events/<type>.json`.
///
/// Ids: facts WhatsApp may deliver again (a message, a receipt) get an id
/// derived from what identifies them, so a redelivery after a crash yields the
/// same id; one-off facts (a state change, a QR code) get a random id, fixed
/// once the event is in the outbox.
enum EventFactory {
    /// A stable id: the first 128 bits of SHA-256 over the parts, as a UUID-shaped string.
    static func derivedID(_ parts: String...) -> String {
        let digest = Symmetric.sha256(Data(parts.joined(separator: "\u{1F}").utf8))
        let hex = digest.prefix(16).map { String(format: "%02x", $0) }.joined()
        let c = Array(hex)
        return "\(String(c[0..<8]))-\(String(c[8..<12]))-\(String(c[12..<16]))-\(String(c[16..<20]))-\(String(c[20..<32]))"
    }

    static func timeString(_ date: Date) -> JSONValue { .string(CloudEvent.timeString(date)) }

    // MARK: Device events

    static func cloudEvent(_ e: DeviceEvent, jid: String?) -> CloudEvent {
        let typeAndData: (EventType, JSONValue)
        switch e.kind {
        case .created: typeAndData = (.deviceCreated, ["device_id": .string(e.deviceID.rawValue)])
        case .deleted: typeAndData = (.deviceDeleted, ["device_id": .string(e.deviceID.rawValue)])
        case .state(let from, let to, let reason):
            typeAndData = (.connectionState, ["from": .string(from.rawValue), "to": .string(to.rawValue), "reason": .string(reason)])
        case .qr(let text, let expiresAt):
            typeAndData = (.loginQR, ["code": .string(text), "expires_at": timeString(expiresAt)])
        case .pairingCode(let code): typeAndData = (.loginPairCode, ["code": .string(code)])
        case .loggedIn(let jid, let lid, let pushName):
            typeAndData = (.loginSuccess, ["jid": .string(jid), "lid": lid.map(JSONValue.string) ?? .null,
                                           "push_name": .string(pushName)])
        case .loggedOut(let reason): typeAndData = (.loggedOut, ["reason": .string(reason)])
        case .error(let code, let message, let reason):
            typeAndData = (.deviceError, ["code": .string(code), "message": .string(message),
                                          "reason": reason.map { .number(Double($0)) } ?? .null])
        case .identityChanged(let jid, let previousKey, let newKey):
            typeAndData = (.identityChanged, ["jid": .string(jid), "previous_key": previousKey.map(JSONValue.string) ?? .null,
                                              "new_key": newKey.map(JSONValue.string) ?? .null])
        case .offlineSync(let count):
            typeAndData = (.offlineSync, ["status": "completed", "count": .number(Double(count))])
        case .appStateSyncFailed(let collection, let version, let code):
            typeAndData = (.appStateSyncFailed, ["collection": .string(collection), "version": .number(Double(version)),
                                                 "code": .string(code)])
        }
        return CloudEvent(id: UUID().uuidString.lowercased(), type: typeAndData.0, deviceID: e.deviceID, time: e.time,
                          jid: jid, data: typeAndData.1)
    }

    /// A stable code of an error for logs (never its message: it may quote data).
    static func errorCode(_ error: any Error) -> String {
        if let e = error as? StoreError { return e.code.rawValue }
        if let e = error as? DeviceError { return e.code.rawValue }
        return String(describing: type(of: error))
    }

    // MARK: Messages

    /// Whether a received message is worth an event: a bare sender-key
    /// distribution or a protocol message other than revoke/edit (history
    /// sync, app state keys) shows nothing to a user.
    static func isVisible(_ m: ReceivedMessage) -> Bool {
        if case .other = m.content {
            return !(m.message.hasSenderKeyDistributionMessage || m.message.hasProtocolMessage)
        }
        return true
    }

    static func messageKind(_ content: MessageContent) -> String {
        if case .other = content { return "unknown" }
        return content.kind
    }

    /// `message.received`; its id is derived from (device, chat, sender, WhatsApp message id).
    /// `historical`: a message of the phone's history sync (its `data` says so).
    static func received(_ m: ReceivedMessage, device: DeviceID, jid: String?, historical: Bool = false) -> CloudEvent {
        let chat = m.chat.description, sender = m.sender.nonAD.description
        var d: [String: JSONValue] = [
            "message_id": .string(m.id), "chat": .string(chat), "sender": .string(sender),
            "from_me": .bool(m.isFromMe), "is_group": .bool(m.isGroup), "timestamp": timeString(m.timestamp),
            "push_name": m.pushName.map(JSONValue.string) ?? .null, "kind": .string(messageKind(m.content)),
        ]
        // `chat`/`sender` are by phone number where the client knows it; the LIDs beside them.
        if let lid = m.senderLID { d["sender_lid"] = .string(lid.nonAD.description) }
        if let lid = m.chatLID { d["chat_lid"] = .string(lid.nonAD.description) }
        if historical { d["historical"] = .bool(true) }
        func addContext(_ c: MessageContent.ReplyContext?) {
            guard let c else { return }
            if let id = c.quotedID {
                d["reply_to"] = ["id": .string(id), "sender": c.quotedParticipant.map(JSONValue.string) ?? .null]
            }
            if !c.mentions.isEmpty { d["mentions"] = .array(c.mentions.map(JSONValue.string)) }
        }
        switch m.content {
        case .text(let text, let context):
            d["text"] = .string(text)
            addContext(context)
        case .reaction(let key, let emoji):
            d["reaction"] = ["message_id": .string(key.id), "emoji": .string(emoji), "from_me": .bool(key.fromMe)]
        case .revoke(let key):
            d["revoke"] = ["message_id": .string(key.id)]
        case .edit(let key, let newContent):
            let text = newContent.hasConversation ? newContent.conversation : newContent.extendedTextMessage.text
            d["edit"] = ["message_id": .string(key.id), "text": .string(text)]
        case .media(let info):
            // Metadata only: the media key and the download URL stay in the bridge.
            var media: [String: JSONValue] = [
                "mimetype": .string(info.mimetype), "file_length": .number(Double(info.fileLength)),
                "file_sha256": .string(info.fileSHA256.base64EncodedString()),
            ]
            if let caption = info.caption { media["caption"] = .string(caption) }
            if let name = info.fileName { media["file_name"] = .string(name) }
            d["media"] = .object(media)
            addContext(info.context)
        case .location(let latitude, let longitude, let name, let address):
            var loc: [String: JSONValue] = ["latitude": .number(latitude), "longitude": .number(longitude)]
            if let name { loc["name"] = .string(name) }
            if let address { loc["address"] = .string(address) }
            d["location"] = .object(loc)
        case .contact(let displayName, let vcard):
            d["contact"] = ["display_name": .string(displayName), "vcard": .string(vcard)]
        case .poll(let name, let options, let selectable):
            d["poll"] = ["name": .string(name), "options": .array(options.map(JSONValue.string)),
                         "selectable_count": .number(Double(selectable))]
        case .other:
            break
        }
        let id = derivedID("message.received", device.rawValue, chat, sender, m.id)
        return CloudEvent(id: id, type: .messageReceived, deviceID: device, time: Date(), jid: jid, data: .object(d))
    }

    /// `message.undecryptable`; its id is derived from (device, chat, sender, message id, retry
    /// count, reason), so the same stanza redelivered after a crash gives the same id.
    static func undecryptable(_ f: UndecryptableMessage, device: DeviceID, jid: String?) -> CloudEvent {
        let chat = f.chat.nonAD.description, sender = f.sender.description
        let d: [String: JSONValue] = [
            "message_id": .string(f.id), "chat": .string(chat), "sender": .string(sender), "is_group": .bool(f.isGroup),
            "reason": .string(f.reason.rawValue), "retry_requested": .bool(f.retryRequested),
            "retry_count": f.retryCount.map { .number(Double($0)) } ?? .null,
            "phone_resend_requested": .bool(f.phoneResendRequested),
            "phone_resend_delay_ms": f.phoneResendDelay.map { .number(Double($0.components.seconds * 1_000 + $0.components.attoseconds / 1_000_000_000_000_000)) } ?? .null,
            "unavailable_type": f.unavailableType.map(JSONValue.string) ?? .null,
        ]
        let id = derivedID("message.undecryptable", device.rawValue, chat, sender, f.id, "\(f.retryCount ?? 0)", f.reason.rawValue)
        return CloudEvent(id: id, type: .messageUndecryptable, deviceID: device, time: Date(), jid: jid, data: .object(d))
    }

    /// The JID of a Signal address (`user` or `user_1` for a LID, with its device).
    static func jid(of address: SignalAddress) -> String {
        let isLID = address.name.hasSuffix("_1")
        let user = isLID ? String(address.name.dropLast(2)) : address.name
        let device = address.deviceID == 0 ? "" : ":\(address.deviceID)"
        return "\(user)\(device)@\(isLID ? JID.lidServer : JID.userServer)"
    }

    /// The history row of a received message (its body is the event's `data`).
    static func historyMessage(_ m: ReceivedMessage, data: JSONValue, status: String = "received") -> HistoryMessage {
        HistoryMessage(
            id: m.id, chat: m.chat.description, sender: m.sender.nonAD.description,
            direction: m.isFromMe ? .outgoing : .incoming, timestamp: Int64(m.timestamp.timeIntervalSince1970),
            kind: messageKind(m.content), status: status, body: String(decoding: data.encoded(), as: UTF8.self))
    }

    // MARK: History sync

    /// `history.sync` for one chunk; its id is derived from (device, notification message id), so
    /// the same chunk recorded again is not published twice.
    static func historySync(
        _ chunk: HistorySyncChunk, stored: HistorySyncStored?, failure: (code: String, cause: String)?, device: DeviceID, jid: String?
    ) -> CloudEvent {
        var d: [String: JSONValue] = [
            "sync_type": .string(chunk.syncType), "chunk_order": .number(Double(chunk.chunkOrder)),
            "progress": chunk.progress.map { .number(Double($0)) } ?? .null, "source": .string(chunk.source.rawValue),
            "conversations": .number(Double(stored?.conversations ?? 0)), "messages": .number(Double(stored?.messages ?? 0)),
            "push_names": .number(Double(stored?.pushNames ?? 0)), "error": .null,
        ]
        if case .success(let content) = chunk.outcome {
            d["mappings"] = .number(Double(content.mappings))
            d["messages_dropped"] = .number(Double(content.messagesDropped + (stored?.pruned ?? 0)))
        }
        if let failure {
            d["error"] = ["code": .string(failure.code), "cause": .string(failure.cause),
                          "message": .string(historyFailureMessage(failure.code))]
        }
        let id = derivedID("history.sync", device.rawValue, chunk.notificationID)
        return CloudEvent(id: id, type: .historySync, deviceID: device, time: Date(), jid: jid, data: .object(d))
    }

    /// The stable code of a chunk that could not be read, from the client's typed error.
    static func historyFailureCode(_ code: WAClientError.Code) -> String {
        switch code {
        case .mediaHashMismatch, .mediaBadMAC: "HISTORY_BLOB_INVALID"
        case .payloadMalformed, .payloadTooLarge: "HISTORY_PAYLOAD_INVALID"
        // The media host, the media_conn IQ, or the link under it (a drop mid-download).
        default: "HISTORY_DOWNLOAD_FAILED"
        }
    }

    static func historyFailureMessage(_ code: String) -> String {
        switch code {
        case "HISTORY_BLOB_INVALID": "the history blob from the media host failed its hash or MAC check; the chunk was skipped"
        case "HISTORY_DOWNLOAD_FAILED": "the history blob could not be downloaded from the media host; the chunk was skipped"
        case "HISTORY_STORE_FAILED": "the chunk could not be written to the device's history; it was skipped"
        default: "the history payload did not inflate or parse; the chunk was skipped"
        }
    }

    /// The stable code of a refused send: 463 is the server asking for a privacy token (a DM
    /// to a contact who has not messaged us, without `<tctoken>`/`<cstoken>`:
    /// "reach-out timelock" in reports, e.g. evolution-go #50); retrying cannot help, so it is
    /// named apart.
    static func failureCode(_ serverError: Int) -> String {
        serverError == 463 ? "PRIVACY_TOKEN_REQUIRED" : "SEND_FAILED"
    }

    static func statusString(_ s: MessageStatus) -> String {
        switch s {
        case .sent: "sent"
        case .delivered: "delivered"
        case .read: "read"
        case .played: "played"
        case .failed: "failed"
        }
    }

    /// `message.status` for one message of a status update; the id is derived
    /// from (device, chat, message, status, who), so a receipt redelivered gives the same id.
    static func status(
        _ u: ReceiptEvent.StatusUpdate, messageID: String, command: InFlightSends.CommandRef?, device: DeviceID, jid: String?
    ) -> CloudEvent {
        let status = statusString(u.status)
        var d: [String: JSONValue] = [
            "message_id": .string(messageID), "chat": .string(u.chat.description), "status": .string(status),
        ]
        if u.by != u.chat { d["recipient"] = .string(u.by.description) }
        if let command { d["command_id"] = .string(command.commandID) }
        if case .failed(let code) = u.status {
            d["error"] = ["code": .string(failureCode(code)), "message": .string("WhatsApp refused the message (error \(code))")]
        }
        if let t = u.timestamp { d["timestamp"] = timeString(t) }
        let id = derivedID("message.status", device.rawValue, u.chat.description, messageID, status, u.by.description)
        return CloudEvent(id: id, type: .messageStatus, deviceID: device, time: Date(), jid: jid,
                          correlationID: command?.correlationID, data: .object(d))
    }
}
