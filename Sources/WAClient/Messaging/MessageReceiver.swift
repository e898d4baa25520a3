import Foundation
import SwiftProtobuf
import WABinary
import WAProto
import WASignal

/// The receive path for one `<message>` stanza: decrypt every `<enc>`
/// (pkmsg / msg first, then skmsg), install a sender key distribution found
/// in a 1:1 payload before the skmsg that needs it, unpad, parse, unwrap a
/// DeviceSentMessage from our own devices, and hand back a typed message
/// with its delivery receipt, or a failure with its retry receipt.
///
/// Signal state changes only when a decryption succeeds (WASignal commits at
/// the end of a successful operation), so a failed stanza leaves sessions as
/// they were. Retry counts per message id are kept here, bounded
/// (`RetryCounter`). A value type: the device's actor owns one.
public struct MessageReceiver: Sendable {
    /// Most `<enc>` children read from one stanza.
    public static let maxEncPerMessage = 4
    /// Largest decrypted payload accepted (bytes).
    public static let maxPayloadBytes = 4 << 20

    public let store: any SignalProtocolStore
    /// Our own device JID.
    public let ownDevice: JID
    /// Our LID, when known: messages from our own devices may come LID-addressed.
    public var ownLID: JID?
    /// Our keys for retry receipts from the second retry on (nil: never attach them).
    public var retryKeys: (@Sendable () async throws -> RetryReceipt.Keys)?
    public private(set) var retries = RetryCounter()
    /// Keep each decrypted payload in the store, in the same commit as the
    /// ratchet step, until the caller removes it (`stanzaKey`): a stanza that
    /// comes back after a crash or a failed hand-over is served from there,
    /// since its ciphertext no longer decrypts.
    public var keepPlaintexts = false

    public init(
        store: any SignalProtocolStore, ownDevice: JID, ownLID: JID? = nil,
        retryKeys: (@Sendable () async throws -> RetryReceipt.Keys)? = nil
    ) {
        self.store = store
        self.ownDevice = ownDevice
        self.ownLID = ownLID
        self.retryKeys = retryKeys
    }

    /// The name under which a stanza's kept plaintexts are stored: sender and message id.
    public static func stanzaKey(_ stanza: Node) -> String {
        "\(stanza.string("from") ?? "")|\(stanza.string("participant") ?? "")|\(stanza.string("id") ?? "")"
    }

    /// `senderLID`: the sender's LID device when the stanza names it by phone number and its
    /// LID is known; its Signal state is kept under the LID, so the stanza is decrypted there.
    public mutating func receive(_ stanza: Node, senderLID: JID? = nil) async throws -> ReceiveOutcome {
        let ctx = "message"
        guard stanza.tag == "message" else { throw WAClientError(.stanzaMalformed, "\(ctx): not a message stanza") }
        let id = try stanza.requiredString("id", in: ctx)
        let from = try stanza.requiredJID("from", in: ctx)
        let isGroup = from.server == JID.groupServer || from.server == JID.broadcastServer
        let sender = isGroup ? try stanza.requiredJID("participant", in: ctx) : from
        let isFromMe = [ownDevice, ownLID].contains { own in own.map { sender.user == $0.user && sender.server == $0.server } ?? false }
        var chat = isGroup ? from : (isFromMe ? (stanza.jid("recipient") ?? from).nonAD : from.nonAD)
        let signalSender = senderLID ?? sender

        let encs = stanza.children("enc")
        guard encs.count <= Self.maxEncPerMessage else {
            // Reported, not dropped: nothing is decrypted and no retry is asked (a resend would be the same).
            let refused = WAClientError(.limitExceeded, "\(ctx): \(encs.count) <enc>, bound \(Self.maxEncPerMessage)")
            return .undecryptable(
                UndecryptableMessage(id: id, chat: chat, sender: sender, error: refused, retryCount: nil, reason: .tooManyEnc),
                retryReceipt: nil)
        }
        if encs.isEmpty, let unavailable = stanza.child("unavailable") {
            // The server holds no ciphertext for us (whatsmeow decryptMessages): only our phone can
            // hand the message over (placeholder resend); no retry receipt to the sender.
            let missing = WAClientError(.stanzaMalformed, "\(ctx): unavailable")
            return .undecryptable(
                UndecryptableMessage(id: id, chat: chat, sender: sender, error: missing, retryCount: nil, reason: .unavailable,
                                     unavailableType: String((unavailable.string("type") ?? "").prefix(64))),
                retryReceipt: nil)
        }
        guard !encs.isEmpty else {
            return .ignored(id: id, reason: "no <enc> in stanza", receipt: ReceiptNodes.delivery(answering: stanza))
        }

        // A companion opening a session proves it belongs to the account (ADV signatures).
        if sender.device != 0, let pkmsg = encs.first(where: { $0.string("type") == "pkmsg" })?.bytes,
           let identity = stanza.child("device-identity")?.bytes, !identity.isEmpty {
            do {
                guard let senderIdentity = DeviceIdentityCheck.senderIdentity(ofPreKeyMessage: Data(pkmsg)) else {
                    throw WAClientError(.deviceIdentityInvalid, "pkmsg carries no identity key")
                }
                let primary = try await store.identity(
                    for: SignalAddress(jid: JID(user: signalSender.user, device: 0, server: signalSender.server)))
                try DeviceIdentityCheck.verify(Data(identity), senderIdentity: senderIdentity, primaryIdentity: primary)
            } catch {
                let refused = error as? WAClientError ?? WAClientError(.store, "identity lookup: \(type(of: error))")
                return .undecryptable(
                    UndecryptableMessage(id: id, chat: chat, sender: sender, error: refused, retryCount: nil), retryReceipt: nil)
            }
        }

        var content: WAE2E_Message?
        var identityChange: IdentityChange?
        let ordered = encs.filter { $0.string("type") != "skmsg" } + encs.filter { $0.string("type") == "skmsg" }
        let stanzaKey = Self.stanzaKey(stanza)
        for (index, enc) in ordered.enumerated() {
            let keeping = keepPlaintexts
                ? PendingPlaintextKey(stanza: stanzaKey, part: "\(index).\(enc.string("type") ?? "")") : nil
            do {
                let decrypted: WAE2E_Message?
                do { decrypted = try await decrypt(enc, sender: signalSender, chat: chat, keeping: keeping) } catch let error as SignalError
                    where error.code == .untrustedIdentity && enc.string("type") == "pkmsg" && error.identityChange != nil {
                    // The peer reinstalled: a new session under a new identity. Accept it
                    // (as WhatsApp clients do) and report the change with the message.
                    identityChange = error.identityChange
                    if let key = error.identityChange?.newKey { try await store.saveIdentity(key, for: error.identityChange!.address) }
                    decrypted = try await decrypt(enc, sender: signalSender, chat: chat, keeping: keeping)
                }
                guard var message = decrypted else { continue }
                if message.hasDeviceSentMessage, isFromMe {
                    let dsm = message.deviceSentMessage
                    if let destination = JID(dsm.destinationJid) { chat = destination.nonAD }
                    message = dsm.message
                }
                if message.hasSenderKeyDistributionMessage {
                    try await installSenderKey(message.senderKeyDistributionMessage, sender: signalSender, chat: chat)
                    message.clearSenderKeyDistributionMessage()
                }
                if message != WAE2E_Message() { content = message }
            } catch let error as SignalError where error.code == .duplicateMessage {
                return .ignored(id: id, reason: "duplicate", receipt: ReceiptNodes.delivery(answering: stanza))
            } catch {
                let clientError = WAClientError.signal(.messageDecryptFailed, "enc \(enc.string("type") ?? "?") from \(sender)", error)
                let countInMessage = encs.compactMap { $0.int("count") }.max() ?? 0
                let count = retries.next(for: id, countInMessage: countInMessage)
                var receipt: Node?
                if let count {
                    let keys = count > 1 ? try? await retryKeys?() : nil
                    receipt = RetryReceipt.build(
                        for: stanza, count: count, registrationID: try await store.localRegistrationID(), keys: keys)
                }
                return .undecryptable(
                    UndecryptableMessage(id: id, chat: chat, sender: sender, error: clientError, retryCount: receipt == nil ? nil : count,
                                         reason: UndecryptableReason(error)),
                    retryReceipt: receipt)
            }
        }
        let message = content ?? WAE2E_Message()
        var received = ReceivedMessage(
            id: id, chat: chat, sender: sender, isFromMe: isFromMe, isGroup: isGroup,
            timestamp: Date(timeIntervalSince1970: TimeInterval(stanza.int("t") ?? 0)),
            pushName: stanza.string("notify"), content: MessageContent(message), message: message,
            identityChange: identityChange)
        (received.addressingMode, received.senderAlt) = Self.addressing(of: stanza, sender: sender, isGroup: isGroup)
        return .message(received, receipt: ReceiptNodes.delivery(for: received))
    }

    /// The addressing of a stanza: `addressing_mode` (groups) or the sender's server, and the
    /// sender's other JID from `sender_pn`/`participant_pn` (LID-addressed) or
    /// `sender_lid`/`participant_lid` (phone-number-addressed). Facts: whatsmeow's message info parsing.
    static func addressing(of stanza: Node, sender: JID, isGroup: Bool) -> (ReceivedMessage.AddressingMode, JID?) {
        let mode: ReceivedMessage.AddressingMode
        if let stated = stanza.string("addressing_mode") {
            mode = stated == "lid" ? .lid : .phoneNumber
        } else {
            mode = sender.server == JID.lidServer ? .lid : .phoneNumber
        }
        let prefix = isGroup ? "participant" : "sender"
        let alt = mode == .lid ? stanza.jid("\(prefix)_pn") : stanza.jid("\(prefix)_lid")
        // Only a JID of the other kind is an alternative address.
        guard var alt, (alt.server == JID.lidServer) != (sender.server == JID.lidServer) else { return (mode, nil) }
        // The server names the user; the device is the sender's (as whatsmeow fills it in).
        if alt.device == 0 { alt.device = sender.device }
        return (mode, alt)
    }

    /// One `<enc>` to a parsed `Message` (nil for an unknown enc type, skipped).
    /// With `keeping`, a plaintext kept from an earlier delivery is used, and a
    /// new one is kept in the decryption's commit.
    func decrypt(_ enc: Node, sender: JID, chat: JID, keeping: PendingPlaintextKey? = nil) async throws -> WAE2E_Message? {
        guard let bytes = enc.bytes else { throw WAClientError(.stanzaMalformed, "<enc> without content") }
        let ciphertext = Data(bytes)
        let padded: Data
        if let keeping, let kept = try await store.loadPendingPlaintext(keeping) {
            padded = kept
        } else {
            switch enc.string("type") {
            case "pkmsg":
                padded = try await SessionCipher(store: store, address: SignalAddress(jid: sender))
                    .decrypt(preKeySignalMessage: ciphertext, keeping: keeping)
            case "msg":
                padded = try await SessionCipher(store: store, address: SignalAddress(jid: sender))
                    .decrypt(signalMessage: ciphertext, keeping: keeping)
            case "skmsg":
                let name = SenderKeyName(groupID: chat.description, sender: SignalAddress(jid: sender))
                padded = try await GroupCipher(store: store, name: name).decrypt(ciphertext, keeping: keeping)
            default:
                return nil
            }
        }
        guard padded.count <= Self.maxPayloadBytes else {
            throw WAClientError(.payloadInvalid, "decrypted payload of \(padded.count) bytes")
        }
        let plaintext: Data
        do { plaintext = try MessagePadding.unpad(padded) } catch {
            throw WAClientError(.payloadInvalid, "payload padding invalid")
        }
        do { return try WAE2E_Message(serializedBytes: plaintext) } catch {
            throw WAClientError(.payloadInvalid, "payload is not a Message")
        }
    }

    func installSenderKey(_ skdm: WAE2E_SenderKeyDistributionMessage, sender: JID, chat: JID) async throws {
        let groupID = skdm.hasGroupID ? skdm.groupID : chat.description
        let message = try SenderKeyDistributionMessage(serialized: skdm.axolotlSenderKeyDistributionMessage)
        try await GroupSessionBuilder(store: store).process(message, from: SenderKeyName(groupID: groupID, sender: SignalAddress(jid: sender)))
    }
}
