import Foundation
import WABinary
import WAClient
import WACrypto
import WAProto
import WASignal

/// A message a simulated phone received and decrypted. Its text stays in the
/// simulator's memory; nothing logs it.
public struct SimReceivedMessage: Sendable, Hashable {
    public let id: String
    /// The conversation: the peer user (1:1), or the destination of a copy from our own device.
    public let chat: JID
    /// The device that sent it.
    public let sender: JID
    /// The text (conversation or extended text), nil for other kinds.
    public let text: String?
    public let kind: String
    /// A DeviceSentMessage copy from one of the phone's own linked devices.
    public let isFromMe: Bool
    public let timestamp: Int
    /// The message this one quotes (reply) or acts on (reaction, edit, revoke).
    public let ref: String?
    /// Mentioned JIDs (extended text).
    public let mentions: [String]

    func renamed(chat: JID, sender: JID) -> SimReceivedMessage {
        SimReceivedMessage(id: id, chat: chat, sender: sender, text: text, kind: kind, isFromMe: isFromMe, timestamp: timestamp,
                           ref: ref, mentions: mentions)
    }
}

/// The messaging half of a simulated phone (device 0 of its user): its own
/// Signal store, whose identity is the account key, a signed prekey, one-time
/// prekeys made on demand (each handed out once), the messages it received
/// (the newest `maxReceived`) and the statuses of what it sent.
actor SimPhoneAgent {
    static let maxReceived = 5_000
    static let maxStatuses = 1_000
    /// How many message keys the phone remembers to drop a second copy of the same message.
    static let maxSeenKeys = 50_000

    let jid: JID
    /// The phone's LID device (`lid:0`): its address in LID groups.
    let lid: JID
    let store: InMemorySignalStore
    let signedPreKey: SignedPreKeyRecord
    private var nextPreKeyID: UInt32 = 1
    private var receiver: MessageReceiver
    private(set) var received: [SimReceivedMessage] = []
    /// App-state key requests from our companions not yet answered: (device, key ids).
    private var keyRequests: [(device: JID, ids: [Data])] = []
    func takeKeyRequests() -> [(device: JID, ids: [Data])] {
        defer { keyRequests = [] }
        return keyRequests
    }
    /// A phone app shows a message once per (chat, sender user, id): a second copy with the
    /// same key (a sender resending after a crash) is counted here and not shown again.
    private(set) var duplicatesDropped = 0
    private var seenKeys: Set<String> = []
    private var seenOrder: [String] = []
    private(set) var retryReceiptsSent = 0
    private(set) var resends = 0
    /// What the phone sent, for resends on a retry receipt.
    private var sent = RecentMessageCache(capacity: 256)
    private var statuses: [String: MessageStatus] = [:]
    /// Media messages received (key, hashes, direct path), by message id (the newest `maxReceived`).
    private(set) var media: [String: MessageContent.MediaInfo] = [:]
    private var mediaOrder: [String] = []
    /// The `<enc type>`s (`pkmsg`, `msg`, `skmsg`) of each message received, by id (bounded as `received`).
    private(set) var encTypes: [String: [String]] = [:]
    private var encOrder: [String] = []
    private var statusOrder: [String] = []
    /// One Signal operation at a time: the actor re-enters at every await of its store, and two
    /// encryptions interleaved on one session reuse a chain key (the peer then sees BAD_MAC).
    private var signalBusy = false
    private var signalWaiters: [CheckedContinuation<Void, Never>] = []

    func beginSignalTurn() async {
        guard signalBusy else { signalBusy = true; return }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in signalWaiters.append(c) }
    }

    /// Hands the turn to the next waiter in arrival order (the turn stays taken).
    func endSignalTurn() {
        if signalWaiters.isEmpty { signalBusy = false } else { signalWaiters.removeFirst().resume() }
    }

    /// `identity`: the phone's Signal identity, its account key unless a reinstall replaced it.
    init(phone: SimPhone, identity: IdentityKeyPair? = nil) throws {
        jid = phone.jid
        lid = phone.lid
        let identity = identity ?? IdentityKeyPair(keyPair: phone.accountKey)
        store = InMemorySignalStore(identity: identity)
        signedPreKey = try SignedPreKeyRecord.generate(id: 1, identity: identity)
        receiver = MessageReceiver(store: store, ownDevice: phone.jid, ownLID: phone.lid)
    }

    /// A bundle with a fresh one-time prekey (stored before it is handed out).
    func bundle() async -> PreKeyBundle {
        await store.storeSignedPreKey(signedPreKey)
        let preKey = PreKeyRecord(id: nextPreKeyID, keyPair: .generate())
        nextPreKeyID = nextPreKeyID % 0xFF_FFFF + 1
        await store.storePreKey(preKey)
        return PreKeyBundle(
            registrationID: await store.localRegistrationID(), deviceID: 0, preKeyID: preKey.id,
            preKey: preKey.keyPair.publicKey, signedPreKeyID: signedPreKey.id,
            signedPreKey: signedPreKey.keyPair.publicKey, signedPreKeySignature: signedPreKey.signature,
            identityKey: await store.identityKeyPair().publicKey)
    }

    /// Decrypts a peer message from one of the phone's own linked devices (a request to the
    /// phone, not a chat message: not kept in `received`). Nil when it does not decrypt.
    func receivePeer(_ node: Node) async -> WAE2E_Message? {
        await beginSignalTurn()
        defer { endSignalTurn() }
        var working = receiver
        let outcome = try? await working.receive(node)
        receiver = working
        if case .message(let message, _) = outcome { return message.message }
        return nil
    }

    /// Decrypts a delivered `<message>`; returns the receipt to route (delivery or retry).
    func receive(_ node: Node) async -> Node? {
        await beginSignalTurn()
        defer { endSignalTurn() }
        if let id = node.string("id"), encTypes[id] == nil {
            encTypes[id] = node.children("enc").compactMap { $0.string("type") }
            encOrder.append(id)
            if encOrder.count > Self.maxReceived { encTypes[encOrder.removeFirst()] = nil }
        }
        var working = receiver
        let outcome = try? await working.receive(node)
        receiver = working
        switch outcome {
        case .message(let message, let receipt):
            if message.isFromMe, message.message.protocolMessage.hasAppStateSyncKeyRequest {
                // One of our companions lacks app-state keys (WASim+AppState answers it).
                keyRequests.append((message.sender, message.message.protocolMessage.appStateSyncKeyRequest.keyIds.map(\.keyID)))
                if keyRequests.count > Self.maxReceived { keyRequests.removeFirst() }
                return receipt
            }
            var text: String?
            var ref: String?
            var mentions: [String] = []
            switch message.content {
            case .text(let body, let context):
                text = body
                ref = context?.quotedID
                mentions = context?.mentions ?? []
            case .reaction(let key, let emoji):
                text = emoji
                ref = key.id
            case .revoke(let key): ref = key.id
            case .media(let info):
                text = info.caption
                ref = info.context?.quotedID
                media[message.id] = info
                mediaOrder.append(message.id)
                while mediaOrder.count > Self.maxReceived { media[mediaOrder.removeFirst()] = nil }
            case .edit(let key, let newContent):
                text = newContent.hasConversation ? newContent.conversation : newContent.extendedTextMessage.text
                ref = key.id
            default: break
            }
            let key = "\(message.chat.nonAD)|\(message.sender.user)|\(message.id)"
            guard seenKeys.insert(key).inserted else {
                duplicatesDropped += 1
                return receipt
            }
            seenOrder.append(key)
            if seenOrder.count > Self.maxSeenKeys { seenKeys.remove(seenOrder.removeFirst()) }
            received.append(SimReceivedMessage(
                id: message.id, chat: message.chat, sender: message.sender, text: text, kind: message.content.kind,
                isFromMe: message.isFromMe, timestamp: Int(message.timestamp.timeIntervalSince1970), ref: ref, mentions: mentions))
            if received.count > Self.maxReceived { received.removeFirst(received.count - Self.maxReceived) }
            return receipt
        case .undecryptable(_, let retry):
            if retry != nil { retryReceiptsSent += 1 }
            return retry
        case .ignored(_, _, let receipt): return receipt
        case nil: return nil
        }
    }

    /// A sender as `own` when given (its LID in a LID group), else as its LID device when `asLID`
    /// (a LID-addressed DM), else as its phone-number JID.
    func sender(deviceIdentity: Data, own: JID? = nil, asLID: Bool = false) -> MessageSender {
        MessageSender(store: store, ownDevice: own ?? (asLID ? lid : jid), deviceIdentity: deviceIdentity)
    }

    /// Devices among `devices` with no session yet.
    func needingBundles(_ devices: [JID], own: JID? = nil, asLID: Bool = false) async throws -> [JID] {
        try await sender(deviceIdentity: Data(), own: own, asLID: asLID).devicesNeedingBundles(devices)
    }

    /// The phone learned that `pn` is `lid`: its sessions, identities and sender keys with that
    /// user's devices move to the LID addresses, ratchets intact (whatsmeow's `MigratePNToLID`).
    func migrateSessions(fromPN pn: JID, toLID lid: JID) async {
        await beginSignalTurn()
        defer { endSignalTurn() }
        guard pn.server == JID.userServer, lid.server == JID.lidServer else { return }
        await store.migrateAddresses(fromName: pn.nonAD.signalAddressUser, toName: lid.nonAD.signalAddressUser)
    }

    func directMessage(
        id: String, to: JID, message: WAE2E_Message, recipient: [JID], own: [JID], bundles: [JID: PreKeyBundle], asLID: Bool = false
    ) async throws -> Node {
        await beginSignalTurn()
        defer { endSignalTurn() }
        var node = try await sender(deviceIdentity: Data(), asLID: asLID).directMessage(
            id: id, to: to, message: message, recipientDevices: recipient, ownDevices: own, bundles: bundles).node
        sent.insert(message, chat: to, id: id)
        // A primary phone has no ADV device identity: no <device-identity> with its pkmsgs.
        if case .nodes(let children) = node.content { node.content = .nodes(children.filter { $0.tag != "device-identity" }) }
        return node
    }

    func groupMessage(
        id: String, group: JID, text: String, members: [JID], bundles: [JID: PreKeyBundle], own: JID? = nil,
        addressing: GroupMetadata.AddressingMode? = nil
    ) async throws -> Node {
        await beginSignalTurn()
        defer { endSignalTurn() }
        var message = WAE2E_Message()
        message.conversation = text
        var node = try await sender(deviceIdentity: Data(), own: own).groupMessage(
            id: id, group: group, message: message, participantDevices: members, bundles: bundles, addressingMode: addressing).node
        sent.insert(message, chat: group, id: id)
        if case .nodes(let children) = node.content { node.content = .nodes(children.filter { $0.tag != "device-identity" }) }
        return node
    }

    /// The resend a retry receipt asks for (nil when the message is no longer cached or the
    /// resend fails), with `bundle` when the device's fresh bundle was fetched.
    func resend(for retry: RetryReceipt, bundle: PreKeyBundle?) async -> Node? {
        await beginSignalTurn()
        defer { endSignalTurn() }
        // Found by message id whatever the addressing of the retry. In a LID group the device that
        // asked is a LID and our sender key is our LID's.
        let own = retry.participant?.server == JID.lidServer ? lid : jid
        guard let entry = sent.entry(id: retry.messageID),
              case let (message, chat) = (entry.message, entry.chat),
              var node = try? await sender(deviceIdentity: Data(), own: own).resend(message, chat: chat, for: retry, bundle: bundle)
        else { return nil }
        if case .nodes(let children) = node.content { node.content = .nodes(children.filter { $0.tag != "device-identity" }) }
        resends += 1
        return node
    }

    /// A receipt for one of our messages came back.
    func record(receipt node: Node) {
        guard case .status(let update)? = try? ReceiptEvent(parsing: node) else { return }
        for id in update.messageIDs {
            if let old = statuses[id], Self.rank(old) >= Self.rank(update.status) { continue }
            if statuses.updateValue(update.status, forKey: id) == nil { statusOrder.append(id) }
        }
        while statusOrder.count > Self.maxStatuses { statuses[statusOrder.removeFirst()] = nil }
    }

    func markSent(_ id: String) {
        if statuses.updateValue(.sent, forKey: id) == nil { statusOrder.append(id) }
        while statusOrder.count > Self.maxStatuses { statuses[statusOrder.removeFirst()] = nil }
    }

    func status(of id: String) -> MessageStatus? { statuses[id] }

    static func rank(_ status: MessageStatus) -> Int {
        switch status {
        case .failed: 0
        case .sent: 1
        case .delivered: 2
        case .read: 3
        case .played: 4
        }
    }
}
