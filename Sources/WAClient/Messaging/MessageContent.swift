import Foundation
import WAProto

/// What a received message says, reduced to the kinds the bridge handles.
/// Never printed with its text by the client's logs.
public enum MessageContent: Sendable, Equatable {
    case text(String, context: ReplyContext?)
    case reaction(to: MessageKeyRef, emoji: String)
    case revoke(MessageKeyRef)
    case edit(MessageKeyRef, newContent: WAE2E_Message)
    case media(MediaInfo)
    case location(latitude: Double, longitude: Double, name: String?, address: String?)
    case contact(displayName: String, vcard: String)
    case poll(name: String, options: [String], selectableCount: UInt32)
    /// Only a sender key distribution (nothing to show) or a kind not mapped yet.
    case other

    /// Reply and mention context (`ContextInfo`).
    public struct ReplyContext: Sendable, Equatable {
        public var quotedID: String?
        public var quotedParticipant: String?
        public var mentions: [String]

        init?(_ info: WAE2E_ContextInfo?) {
            guard let info, info.hasStanzaID || !info.mentionedJid.isEmpty || info.hasParticipant else { return nil }
            quotedID = info.hasStanzaID ? info.stanzaID : nil
            quotedParticipant = info.hasParticipant ? info.participant : nil
            mentions = info.mentionedJid
        }
    }

    /// The `MessageKey` a reaction, revoke or edit points at.
    public struct MessageKeyRef: Sendable, Equatable {
        public var id: String
        public var remoteJID: String
        public var fromMe: Bool
        public var participant: String?

        public init(id: String, remoteJID: String, fromMe: Bool, participant: String? = nil) {
            self.id = id
            self.remoteJID = remoteJID
            self.fromMe = fromMe
            self.participant = participant
        }

        init(_ key: WACommon_MessageKey) {
            id = key.id
            remoteJID = key.remoteJid
            fromMe = key.fromMe
            participant = key.hasParticipant ? key.participant : nil
        }
    }

    /// Metadata of a media message (the blob is downloaded separately).
    public struct MediaInfo: Sendable, Equatable {
        public enum Kind: String, Sendable { case image, video, audio, document, sticker }
        public var kind: Kind
        public var mimetype: String
        public var caption: String?
        public var fileName: String?
        public var fileLength: UInt64
        public var directPath: String
        public var url: String
        public var mediaKey: Data
        public var fileSHA256: Data
        public var fileEncSHA256: Data
        public var context: ReplyContext?
    }
}

extension MessageContent {
    /// The kind alone (`text`, `reaction`…), safe to log.
    public var kind: String {
        switch self {
        case .text: "text"
        case .reaction: "reaction"
        case .revoke: "revoke"
        case .edit: "edit"
        case .media(let media): media.kind.rawValue
        case .location: "location"
        case .contact: "contact"
        case .poll: "poll"
        case .other: "other"
        }
    }

    /// Maps a decrypted `Message` (wrappers such as ephemeral or view-once unwrapped).
    init(_ message: WAE2E_Message) {
        var m = message
        for _ in 0..<4 {  // bounded unwrapping of future-proof wrappers
            if m.hasEphemeralMessage { m = m.ephemeralMessage.message } else if m.hasViewOnceMessage { m = m.viewOnceMessage.message } else if m.hasViewOnceMessageV2 {
                m = m.viewOnceMessageV2.message
            } else if m.hasDocumentWithCaptionMessage { m = m.documentWithCaptionMessage.message } else { break }
        }
        if m.hasConversation {
            self = .text(m.conversation, context: nil)
        } else if m.hasExtendedTextMessage {
            let e = m.extendedTextMessage
            self = .text(e.text, context: ReplyContext(e.hasContextInfo ? e.contextInfo : nil))
        } else if m.hasReactionMessage {
            self = .reaction(to: MessageKeyRef(m.reactionMessage.key), emoji: m.reactionMessage.text)
        } else if m.hasProtocolMessage, m.protocolMessage.type == .revoke {
            self = .revoke(MessageKeyRef(m.protocolMessage.key))
        } else if m.hasProtocolMessage, m.protocolMessage.type == .messageEdit {
            self = .edit(MessageKeyRef(m.protocolMessage.key), newContent: m.protocolMessage.editedMessage)
        } else if m.hasImageMessage {
            let i = m.imageMessage
            self = .media(MediaInfo(kind: .image, mimetype: i.mimetype, caption: i.hasCaption ? i.caption : nil, fileName: nil,
                                    fileLength: i.fileLength, directPath: i.directPath, url: i.url, mediaKey: i.mediaKey,
                                    fileSHA256: i.fileSha256, fileEncSHA256: i.fileEncSha256,
                                    context: ReplyContext(i.hasContextInfo ? i.contextInfo : nil)))
        } else if m.hasVideoMessage {
            let v = m.videoMessage
            self = .media(MediaInfo(kind: .video, mimetype: v.mimetype, caption: v.hasCaption ? v.caption : nil, fileName: nil,
                                    fileLength: v.fileLength, directPath: v.directPath, url: v.url, mediaKey: v.mediaKey,
                                    fileSHA256: v.fileSha256, fileEncSHA256: v.fileEncSha256,
                                    context: ReplyContext(v.hasContextInfo ? v.contextInfo : nil)))
        } else if m.hasAudioMessage {
            let a = m.audioMessage
            self = .media(MediaInfo(kind: .audio, mimetype: a.mimetype, caption: nil, fileName: nil,
                                    fileLength: a.fileLength, directPath: a.directPath, url: a.url, mediaKey: a.mediaKey,
                                    fileSHA256: a.fileSha256, fileEncSHA256: a.fileEncSha256,
                                    context: ReplyContext(a.hasContextInfo ? a.contextInfo : nil)))
        } else if m.hasDocumentMessage {
            let d = m.documentMessage
            self = .media(MediaInfo(kind: .document, mimetype: d.mimetype, caption: d.hasCaption ? d.caption : nil,
                                    fileName: d.hasFileName ? d.fileName : nil,
                                    fileLength: d.fileLength, directPath: d.directPath, url: d.url, mediaKey: d.mediaKey,
                                    fileSHA256: d.fileSha256, fileEncSHA256: d.fileEncSha256,
                                    context: ReplyContext(d.hasContextInfo ? d.contextInfo : nil)))
        } else if m.hasStickerMessage {
            let s = m.stickerMessage
            self = .media(MediaInfo(kind: .sticker, mimetype: s.mimetype, caption: nil, fileName: nil,
                                    fileLength: s.fileLength, directPath: s.directPath, url: s.url, mediaKey: s.mediaKey,
                                    fileSHA256: s.fileSha256, fileEncSHA256: s.fileEncSha256,
                                    context: ReplyContext(s.hasContextInfo ? s.contextInfo : nil)))
        } else if m.hasLocationMessage {
            let l = m.locationMessage
            self = .location(latitude: l.degreesLatitude, longitude: l.degreesLongitude,
                             name: l.hasName ? l.name : nil, address: l.hasAddress ? l.address : nil)
        } else if m.hasContactMessage {
            self = .contact(displayName: m.contactMessage.displayName, vcard: m.contactMessage.vcard)
        } else if m.hasPollCreationMessage || m.hasPollCreationMessageV2 || m.hasPollCreationMessageV3 {
            let p = m.hasPollCreationMessage ? m.pollCreationMessage : (m.hasPollCreationMessageV2 ? m.pollCreationMessageV2 : m.pollCreationMessageV3)
            self = .poll(name: p.name, options: p.options.map(\.optionName), selectableCount: p.selectableOptionsCount)
        } else {
            self = .other
        }
    }
}
