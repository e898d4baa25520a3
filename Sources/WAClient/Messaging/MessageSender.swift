import Foundation
import SwiftProtobuf
import WABinary
import WAProto
import WASignal

/// Builds encrypted `<message>` stanzas from an E2E `Message`: 1:1 (here),
/// group (`MessageSender+Group.swift`) and resends on a retry receipt
/// (`MessageSender+Retry.swift`). Pure apart from the Signal store, which
/// WASignal updates only when an encryption succeeds.
///
/// 1:1 shape (recipient devices get the padded message; our other devices
/// get `Message{deviceSentMessage{destinationJID, message}}`, padded):
/// ```
/// <message to="N@s.whatsapp.net" id type=text|media|reaction|poll [edit] phash>
///   <participants><to jid="N:D@s.whatsapp.net"><enc v=2 type=pkmsg|msg>…</enc></to>…</participants>
///   [<device-identity>ADVSignedDeviceIdentity</device-identity>]   (when any pkmsg)
/// </message>
/// ```
/// phash covers every device of the conversation, ours included (the sending
/// device too), as whatsmeow computes it over the usync result.
public struct MessageSender: Sendable {
    /// Most devices one 1:1 stanza is encrypted for.
    public static let maxDevices = 1_024
    /// Most devices one group stanza is encrypted for. whatsmeow sends a group message as one
    /// stanza for every member device, however many (send.go `sendGroup`); the bound is the
    /// largest group WhatsApp makes: 5,000 members (community announcement groups) with a
    /// phone and four companions each. At ~300 bytes per sender key distribution that is
    /// ~7.5 MB, inside one Noise frame (2^24 - 1 bytes).
    public static let maxGroupDevices = 25_000

    public let store: any SignalProtocolStore
    /// Our own device JID (`user:device@s.whatsapp.net`).
    public let ownDevice: JID
    /// Our `ADVSignedDeviceIdentity` as serialized bytes (the account record from pairing).
    public let deviceIdentity: Data
    /// Phone-number users whose LID is known, by user part (number → LID user): their
    /// sessions are kept under the LID (whatsmeow's encryption identity), whichever address
    /// the stanza names them by.
    public var lidUsers: [String: String]

    public init(store: any SignalProtocolStore, ownDevice: JID, deviceIdentity: Data, lidUsers: [String: String] = [:]) {
        self.store = store
        self.ownDevice = ownDevice
        self.deviceIdentity = deviceIdentity
        self.lidUsers = lidUsers
    }

    /// Where `device`'s Signal state lives: its LID device when its number is mapped.
    public func signalAddress(of device: JID) -> SignalAddress {
        guard device.server == JID.userServer, let lid = lidUsers[device.user] else { return SignalAddress(jid: device) }
        return SignalAddress(jid: JID(user: lid, device: device.device, server: JID.lidServer))
    }

    /// The devices among `devices` with no usable session yet: fetch bundles for these.
    public func devicesNeedingBundles(_ devices: [JID]) async throws -> [JID] {
        var out: [JID] = []
        for device in devices where device != ownDevice {
            let record = try await store.loadSession(for: signalAddress(of: device))
            if !(record?.hasCurrentSession ?? false) { out.append(device) }
        }
        return out
    }

    /// A 1:1 message to `to` (a user JID).
    /// - Parameters:
    ///   - recipientDevices: the recipient's devices (usync).
    ///   - ownDevices: our devices (usync on our own user); the sending device is skipped.
    ///   - bundles: prekey bundles for devices without a session.
    public func directMessage(
        id: String, to: JID, message: WAE2E_Message, recipientDevices: [JID], ownDevices: [JID],
        bundles: [JID: PreKeyBundle] = [:]
    ) async throws -> OutgoingMessage {
        let chat = to.nonAD
        guard chat.server == JID.userServer || chat.server == JID.lidServer else {
            throw WAClientError(.invalidRecipient, "1:1 send to a \(chat.server) JID")
        }
        guard MessageID.isAcceptable(id) else { throw WAClientError(.invalidRecipient, "message id not acceptable") }
        let others = ownDevices.filter { $0 != ownDevice }
        guard recipientDevices.count + others.count <= Self.maxDevices else {
            throw WAClientError(.limitExceeded, "send to \(recipientDevices.count + others.count) devices, bound \(Self.maxDevices)")
        }
        let plaintext = try Self.serialize(message)
        var dsm = WAE2E_Message()
        dsm.deviceSentMessage.destinationJid = chat.description
        dsm.deviceSentMessage.message = message
        if message.hasMessageContextInfo { dsm.messageContextInfo = message.messageContextInfo }
        let dsmPlaintext = try Self.serialize(dsm)

        var fanout = FanOut(mediaType: Self.mediaType(of: message))
        fanout.hidesDecryptFailure = Self.hidesDecryptFailure(message)
        for device in recipientDevices where device != ownDevice {
            await fanout.encrypt(MessagePadding.pad(plaintext), for: device, sender: self, bundles: bundles)
        }
        for device in others {
            await fanout.encrypt(MessagePadding.pad(dsmPlaintext), for: device, sender: self, bundles: bundles)
        }
        guard !fanout.participants.isEmpty else {
            throw fanout.skipped.values.first ?? WAClientError(.invalidRecipient, "no device to send to")
        }
        let phash = ParticipantHash.v2(Set(recipientDevices + ownDevices + [ownDevice]))
        var node = Node("message", attributes: [
            "to": .jid(chat), "id": .string(id), "type": .string(Self.stanzaType(of: message)),
        ])
        if let edit = Self.editAttribute(of: message) { node["edit"] = .string(edit) }
        node["phash"] = .string(phash)
        var children = [Node("participants", children: fanout.participants)]
        if fanout.hasPreKey { children.append(.binary("device-identity", deviceIdentity)) }
        node.content = .nodes(children)
        return OutgoingMessage(
            node: node, id: id, phash: phash, encryptedFor: fanout.devices, skipped: fanout.skipped,
            hasPreKeyMessage: fanout.hasPreKey, identityChanges: fanout.identityChanges)
    }

    // MARK: Pieces shared by 1:1, group and retry sends

    /// Accumulates `<to jid><enc/></to>` nodes for a fan-out.
    struct FanOut {
        var mediaType: String?
        var participants: [Node] = []
        var devices: [JID] = []
        var skipped: [JID: WAClientError] = [:]
        var identityChanges: [IdentityChange] = []
        var hasPreKey = false
        /// `<enc decrypt-fail=hide>`: a recipient that cannot decrypt shows no placeholder.
        var hidesDecryptFailure = false

        mutating func encrypt(_ padded: Data, for device: JID, sender: MessageSender, bundles: [JID: PreKeyBundle]) async {
            do {
                let (ciphertext, change) = try await sender.encrypt(padded, for: device, bundle: bundles[device])
                if let change { identityChanges.append(change) }
                var enc = MessageSender.encNode(ciphertext, mediaType: mediaType)
                if hidesDecryptFailure { enc["decrypt-fail"] = "hide" }
                participants.append(Node("to", attributes: ["jid": .jid(device)], children: [enc]))
                devices.append(device)
                if case .preKey = ciphertext { hasPreKey = true }
            } catch {
                skipped[device] = WAClientError.signal(.messageEncryptFailed, "encrypt for \(device)", error)
            }
        }
    }

    /// Encrypts for one device, first opening a session from `bundle` when there is none.
    func encrypt(_ padded: Data, for device: JID, bundle: PreKeyBundle?) async throws -> (CiphertextMessage, IdentityChange?) {
        let address = signalAddress(of: device)
        let record = try await store.loadSession(for: address)
        var change: IdentityChange?
        if !(record?.hasCurrentSession ?? false) {
            guard let bundle else { throw WAClientError(.messageEncryptFailed, "no session and no prekey bundle for \(device)") }
            change = try await openSession(bundle, for: device)
        }
        return (try await SessionCipher(store: store, address: address).encrypt(padded), change)
    }

    /// Opens a session from a bundle. A bundle whose identity differs from the
    /// one we knew (the peer reinstalled) is accepted, as WhatsApp clients do,
    /// and the change is returned so the caller can tell the user.
    func openSession(_ bundle: PreKeyBundle, for device: JID) async throws -> IdentityChange? {
        let builder = SessionBuilder(store: store, address: signalAddress(of: device))
        do {
            try await builder.process(bundle: bundle)
            return nil
        } catch let error as SignalError where error.code == .untrustedIdentity && error.identityChange != nil {
            let change = error.identityChange!
            if let key = change.newKey { try await store.saveIdentity(key, for: change.address) }
            try await builder.process(bundle: bundle)
            return change
        }
    }

    static func encNode(_ ciphertext: CiphertextMessage, count: Int? = nil, mediaType: String? = nil) -> Node {
        var node = Node("enc", attributes: ["v": "2", "type": .string(ciphertext.type)], content: .bytes([UInt8](ciphertext.serialized)))
        if let mediaType { node["mediatype"] = .string(mediaType) }
        if let count { node["count"] = .string(String(count)) }
        return node
    }

    /// The `<enc mediatype>` whatsmeow adds for media kinds.
    public static func mediaType(of message: WAE2E_Message) -> String? {
        if message.hasImageMessage { return "image" }
        if message.hasStickerMessage { return "sticker" }
        if message.hasDocumentMessage { return "document" }
        if message.hasAudioMessage { return message.audioMessage.ptt ? "ptt" : "audio" }
        if message.hasVideoMessage { return message.videoMessage.gifPlayback ? "gif" : "video" }
        if message.hasContactMessage { return "vcard" }
        if message.hasLocationMessage { return message.locationMessage.isLive ? "livelocation" : "location" }
        return nil
    }

    static func serialize(_ message: WAE2E_Message) throws -> Data {
        do { return try message.serializedData() } catch {
            throw WAClientError(.payloadInvalid, "message does not serialize")
        }
    }

    /// The stanza `type` whatsmeow derives from the content.
    public static func stanzaType(of message: WAE2E_Message) -> String {
        if message.hasReactionMessage { return "reaction" }
        if message.hasPollCreationMessage || message.hasPollCreationMessageV2 || message.hasPollCreationMessageV3
            || message.hasPollUpdateMessage { return "poll" }
        if message.hasImageMessage || message.hasVideoMessage || message.hasAudioMessage || message.hasDocumentMessage
            || message.hasStickerMessage || message.hasLocationMessage || message.hasContactMessage { return "media" }
        return "text"
    }

    /// Whether a 1:1 send marks its `<enc>` `decrypt-fail=hide`: edits (any `edit` attribute),
    /// reactions and poll votes, as whatsmeow's send.go does — a failure to decrypt one of these
    /// must not show the recipient a "waiting for this message" placeholder.
    public static func hidesDecryptFailure(_ message: WAE2E_Message) -> Bool {
        editAttribute(of: message) != nil || stanzaType(of: message) == "reaction" || message.hasPollUpdateMessage
    }

    /// `edit` attribute: "1" for an edit, "7" for revoking our own message.
    public static func editAttribute(of message: WAE2E_Message) -> String? {
        guard message.hasProtocolMessage else { return message.hasEditedMessage ? "1" : nil }
        switch message.protocolMessage.type {
        case .messageEdit: return "1"
        case .revoke: return "7"
        default: return nil
        }
    }
}
