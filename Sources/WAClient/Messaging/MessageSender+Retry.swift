import Foundation
import WABinary
import WAProto
import WASignal

extension MessageSender {
    /// Re-encrypts `message` (which we sent as `retry.messageID` in `chat`)
    /// 1:1 for the device that sent the retry receipt. A bundle in the
    /// receipt's `<keys>` replaces our session with that device first.
    /// A copy for one of our own devices is wrapped in a DeviceSentMessage;
    /// a group message carries our sender key distribution in the same payload.
    /// ```
    /// <message to=<receipt from> id type t [participant] [device_fanout=false]>
    ///   <enc v=2 type=pkmsg|msg count=N/>[<device-identity/>]
    /// </message>
    /// ```
    /// Give up (the caller drops the retry) when `retry.count` exceeds `RetryCounter.maxRetries`.
    /// When the receipt brought no keys but `retry.wantsFreshBundle`, fetch the
    /// device's bundle (`PreKeyNodes.bundleQueryIQ`) and pass it as `bundle`.
    public func resend(
        _ message: WAE2E_Message, chat: JID, for retry: RetryReceipt, bundle fetched: PreKeyBundle? = nil, now: Date = Date()
    ) async throws -> Node {
        guard retry.count <= RetryCounter.maxRetries else {
            throw WAClientError(.limitExceeded, "retry #\(retry.count) for \(retry.messageID), bound \(RetryCounter.maxRetries)")
        }
        let device = retry.device
        if let bundle = retry.bundle ?? fetched {
            do { _ = try await openSession(bundle, for: device) } catch {
                throw WAClientError.signal(.messageEncryptFailed, "bundle from retry receipt", error)
            }
        }
        var payload = message
        let isGroup = chat.server == JID.groupServer
        if isGroup {
            let name = SenderKeyName(groupID: chat.description, sender: SignalAddress(jid: ownDevice))
            do {
                let skdm = try await GroupSessionBuilder(store: store).create(for: name)
                payload.senderKeyDistributionMessage.groupID = chat.description
                payload.senderKeyDistributionMessage.axolotlSenderKeyDistributionMessage = skdm.serialized
            } catch {
                throw WAClientError.signal(.messageEncryptFailed, "sender key for resend", error)
            }
        } else if device.user == ownDevice.user && device.server == ownDevice.server {
            var dsm = WAE2E_Message()
            dsm.deviceSentMessage.destinationJid = chat.nonAD.description
            dsm.deviceSentMessage.message = message
            payload = dsm
        }
        let ciphertext: CiphertextMessage
        do { ciphertext = try await encrypt(MessagePadding.pad(try Self.serialize(payload)), for: device, bundle: nil).0 } catch {
            throw WAClientError.signal(.messageEncryptFailed, "resend to \(device)", error)
        }
        var node = Node("message", attributes: [
            "to": .jid(retry.from), "type": .string(Self.stanzaType(of: message)), "id": .string(retry.messageID),
            "t": .string(String(Int64(now.timeIntervalSince1970))),
        ])
        if !isGroup { node["device_fanout"] = "false" }
        if let participant = retry.participant { node["participant"] = .jid(participant) }
        if let recipient = retry.recipient { node["recipient"] = .jid(recipient) }
        var children = [Self.encNode(ciphertext, count: retry.count, mediaType: Self.mediaType(of: message))]
        if case .preKey = ciphertext { children.append(.binary("device-identity", deviceIdentity)) }
        node.content = .nodes(children)
        return node
    }
}
