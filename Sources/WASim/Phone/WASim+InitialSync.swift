import Foundation
import WABinary
import WAClient
import WACrypto
import WAProto
import WASignal

/// What a simulated phone sent a device it just linked, for tests (and the sync issue) to check.
public struct SimInitialSync: Sendable {
    /// The `protocolMessage{appStateSyncKeyShare}` peer message.
    public let keyShareID: String
    public let keys: [WAE2E_AppStateSyncKey]
    /// The `protocolMessage{historySyncNotification}` peer message.
    public let historyNotificationID: String
    public let notification: WAE2E_HistorySyncNotification
    /// The history the uploaded blob holds (before zlib and media encryption).
    public let history: WAHistorySync_HistorySync
}

/// A real phone, right after linking a companion, sends it (as `category=peer` messages from
/// device 0, encrypted for that one device) the app-state sync keys and a history-sync
/// notification whose blob it uploaded to the media host: the HistorySync proto, zlib-deflated,
/// encrypted with media type "WhatsApp History Keys", mms type `md-msg-hist` (whatsmeow
/// message.go handleProtocolMessage / DownloadHistorySync, download.go).
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

            var history = WAHistorySync_HistorySync()
            history.syncType = .initialBootstrap
            history.chunkOrder = 1
            history.progress = 100
            history.nctSalt = nctSalt(for: number)
            for other in phones.values.sorted(by: { $0.number < $1.number }) {
                var name = WAHistorySync_Pushname()
                name.id = other.jid.description
                name.pushname = other.pushName
                history.pushnames.append(name)
                var mapping = WAHistorySync_PhoneNumberToLIDMapping()
                mapping.pnJid = other.jid.description
                mapping.lidJid = other.lid.description
                history.phoneNumberToLidMappings.append(mapping)
            }
            let inflated: Data = try history.serializedBytes()
            // zlib format with header (Go's zlib.NewReader), as TransportPayload compresses.
            let deflated = Data(try TransportPayload.encodeCompressed(inflated).dropFirst())
            let mediaKey = Symmetric.randomBytes(32)
            let blob = try MediaCipher.encrypt(deflated, keys: MediaKeys(mediaKey: mediaKey, type: .history))
            let directPath = await media.store(blob, kind: "md-msg-hist")
            var notification = WAE2E_HistorySyncNotification()
            notification.fileSha256 = Symmetric.sha256(deflated)
            notification.fileLength = UInt64(deflated.count)
            notification.mediaKey = mediaKey
            notification.fileEncSha256 = Symmetric.sha256(blob)
            notification.directPath = directPath
            notification.syncType = .initialBootstrap
            notification.chunkOrder = 1
            notification.progress = 100
            // Today's phones put the initial bootstrap inline too (whatsmeow reads it before any download).
            notification.initialHistBootstrapInlinePayload = deflated
            var historyMessage = WAE2E_Message()
            historyMessage.protocolMessage.type = .historySyncNotification
            historyMessage.protocolMessage.historySyncNotification = notification

            var bundles: [JID: PreKeyBundle] = [:]
            if try await agent.needingBundles([device]).contains(device), let bundle = await bundle(for: device) {
                bundles[device] = bundle
            }
            let shareID = MessageID.random(ownJID: phone.jid)
            let shareNode = try await agent.peerMessage(id: shareID, to: device, message: shareMessage, bundles: bundles)
            await routePeerMessage(shareNode, from: phone.jid, pushPriority: "high")
            let historyID = MessageID.random(ownJID: phone.jid)
            let historyNode = try await agent.peerMessage(id: historyID, to: device, message: historyMessage, bundles: [:])
            await routePeerMessage(historyNode, from: phone.jid, pushPriority: "high_force")
            initialSyncs[device] = SimInitialSync(
                keyShareID: shareID, keys: share.keys, historyNotificationID: historyID, notification: notification, history: history)
            logger.info("phone sent the initial sync", metadata: ["device": "\(device)", "keys": "\(share.keys.count)"])
        } catch {
            logger.warning("phone could not send the initial sync", metadata: ["device": "\(device)", "error": "\(type(of: error))"])
        }
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
