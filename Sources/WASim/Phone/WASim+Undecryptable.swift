import Foundation
import WABinary
import WAClient
import WACrypto
import WAProto
import WASignal

/// What a phone can send a linked device that the device cannot read, as the real network
/// produces it: a ciphertext whose MAC fails, a `msg` from a device it has no session with,
/// a companion whose `<device-identity>` does not verify, a stanza with too many `<enc>`,
/// and `<unavailable>` (the server holds no ciphertext for the device; only the phone can resend).
public enum SimUndecryptableKind: String, Sendable, CaseIterable {
    /// A `msg` under a fresh ratchet key the sender never agreed: the MAC does not verify
    /// when the device holds a session with the sender (else it is `noSession`).
    case badMAC
    /// A `msg` from a device the receiver has never spoken with.
    case noSession
    /// A pkmsg from a companion device of the sender whose ADV identity is forged.
    case invalidDeviceIdentity
    /// Five `<enc>` children (the client reads at most four).
    case tooManyEnc
    /// `<unavailable type=…>` instead of ciphertext; the phone of the device's own account keeps
    /// the message and answers the device's placeholder-resend request with it.
    case unavailable
}

/// A message a phone holds for its linked devices (placeholder resend answers).
struct SimPlaceholder: Sendable {
    var info: WAWeb_WebMessageInfo
}

extension WASim {
    /// The phone `number` sends `device` (a linked device) a message of `kind` it cannot decrypt,
    /// straight to the device as the server delivers it. For `.unavailable`, `text` is what the
    /// device's own phone holds and hands over on request; for the other kinds it holds it only with
    /// `ownPhoneHolds` (the phone got its own good copy, as the real network fans out to every
    /// device; the sender cannot cure it by a retry, as it never sent this ciphertext). Returns the id.
    @discardableResult
    public func sendUndecryptable(_ kind: SimUndecryptableKind, from number: String, to device: JID,
                                  text: String = "recovered", id: String? = nil, ownPhoneHolds: Bool = false) async throws -> String {
        guard let phone = phones[number] else { throw SimError.unknownPhone(number) }
        guard devices[device] != nil, device.device != 0 else { throw SimError("sim.bad_request", "\(device) is not a linked device") }
        let id = id ?? MessageID.random(ownJID: phone.jid)
        var sender = phone.jid
        var children: [Node]
        switch kind {
        case .badMAC, .noSession:
            children = [Self.enc("msg", Self.forgedSignalMessage())]
        case .tooManyEnc:
            children = (0..<5).map { _ in Self.enc("msg", Self.forgedSignalMessage()) }
        case .invalidDeviceIdentity:
            // A companion of the sender's account that does not exist: its pkmsg is real (made
            // against the device's bundle), its ADV identity is signed by a key that is not the account's.
            sender = JID(user: phone.jid.user, device: 63, server: phone.jid.server)
            guard let bundle = await bundle(for: device) else { throw SimError("sim.bad_request", "\(device) has no bundle") }
            let store = InMemorySignalStore(identity: IdentityKeyPair(keyPair: .generate()))
            let forged = Self.forgedDeviceIdentity()
            var message = WAE2E_Message()
            message.conversation = "forged"
            let out = try await MessageSender(store: store, ownDevice: sender, deviceIdentity: forged).directMessage(
                id: id, to: device.nonAD, message: message, recipientDevices: [device], ownDevices: [], bundles: [device: bundle])
            let encs = Self.encs(in: out.node)
            guard encs.contains(where: { $0.string("type") == "pkmsg" }) else {
                throw SimError("sim.send_failed", "no pkmsg for the forged companion")
            }
            children = encs + [Node("device-identity", content: .bytes([UInt8](forged)))]
        case .unavailable:
            children = [Node("unavailable", attributes: ["type": "view_once"])]
        }
        if kind == .unavailable || ownPhoneHolds {
            var info = WAWeb_WebMessageInfo()
            info.key.remoteJid = phone.jid.nonAD.description
            info.key.fromMe = false
            info.key.id = id
            info.message.conversation = text
            info.messageTimestamp = UInt64(nowSeconds)
            info.pushName = phone.pushName
            keepPlaceholder(info, forPhoneOf: device.user)
        }
        let node = Node("message", [
            Attribute("from", .jid(sender)), Attribute("id", .string(id)), Attribute("t", .string(String(nowSeconds))),
            Attribute("type", "text"), Attribute("notify", .string(phone.pushName)),
        ], content: .nodes(children))
        await deliver(node, to: device)
        return id
    }

    /// A phone that never answers its linked devices' peer data operation requests (placeholder
    /// resend, on-demand history) when `answers` is false: the requests are counted, not answered.
    public func setAnswersPeerRequests(_ answers: Bool, phone number: String) {
        if answers { silentPhones.remove(number) } else { silentPhones.insert(number) }
    }

    /// Message ids of the retry receipts that reached the phone `number` (oldest first).
    public func retryReceiptsReceived(phone number: String) -> [String] { retriesSeen[number] ?? [] }

    func noteRetry(_ id: String, phone number: String) {
        retriesSeen[number, default: []].append(id)
        if retriesSeen[number]!.count > Self.maxRetriesSeen { retriesSeen[number]!.removeFirst() }
    }

    func keepPlaceholder(_ info: WAWeb_WebMessageInfo, forPhoneOf number: String) {
        placeholders[number, default: [:]][info.key.id] = SimPlaceholder(info: info)
        placeholderOrder[number, default: []].append(info.key.id)
        if placeholderOrder[number]!.count > 1_000 { placeholders[number]?[placeholderOrder[number]!.removeFirst()] = nil }
    }

    static func enc(_ type: String, _ bytes: Data) -> Node {
        Node("enc", attributes: ["v": "2", "type": .string(type)], content: .bytes([UInt8](bytes)))
    }

    /// The `<enc>`s of a sent stanza, wherever they sit (`<participants><to>` or directly).
    static func encs(in node: Node) -> [Node] {
        node.children("enc") + (node.child("participants")?.children("to").flatMap { $0.children("enc") } ?? [])
    }

    /// A well-formed Signal `msg` (version 3, a ratchet key, counter 0) under keys nobody agreed:
    /// it parses, and its MAC cannot verify.
    static func forgedSignalMessage() -> Data {
        var proto = SignalWire_SignalMessage()
        proto.ratchetKey = Data([0x05]) + Curve25519KeyPair.generate().publicKey.rawRepresentation
        proto.counter = 0
        proto.previousCounter = 0
        proto.ciphertext = Data((0..<48).map { _ in UInt8.random(in: 0...255) })
        let body = (try? proto.serializedData()) ?? Data()
        return Data([0x33]) + body + Data((0..<8).map { _ in UInt8.random(in: 0...255) })
    }

    /// An ADVSignedDeviceIdentity signed by a random key, not by the account's.
    static func forgedDeviceIdentity() -> Data {
        var details = WAAdv_ADVDeviceIdentity()
        details.rawID = 1
        details.timestamp = UInt64(Date().timeIntervalSince1970)
        details.keyIndex = 63
        var signed = WAAdv_ADVSignedDeviceIdentity()
        signed.details = (try? details.serializedData()) ?? Data()
        signed.accountSignatureKey = Curve25519KeyPair.generate().publicKey.rawRepresentation
        signed.accountSignature = Data((0..<64).map { _ in UInt8.random(in: 0...255) })
        signed.deviceSignature = Data((0..<64).map { _ in UInt8.random(in: 0...255) })
        return (try? signed.serializedData()) ?? Data()
    }
}

extension WASim {
    /// A `category=peer` message: the server hands it only to the sender's own primary phone
    /// (to = the sender's own user); anything else is refused with 400. The phone answers a
    /// placeholder-resend request with the messages it holds for that device.
    func routePeerMessage(_ sent: Node, from sender: JID, connection: SimConnection?) async -> Node {
        let now = nowSeconds
        guard let to = sent.jid("to"), phoneNumberForm(to.nonAD).user == sender.user, to.device == 0,
              let phone = phones[sender.user], let agent = agents[sender.user], !sent.children("enc").isEmpty else {
            let refused = ServerMessageRouting.ack(for: sent, timestamp: now, error: 400)
            await connection?.sendMessageAck(refused)
            return refused
        }
        let ack = ServerMessageRouting.ack(for: sent, timestamp: now)
        await connection?.sendMessageAck(ack)
        var delivered = Node("message", [
            Attribute("from", .jid(sender)), Attribute("id", .string(sent.string("id") ?? "")),
            Attribute("t", .string(String(now))), Attribute("type", "text"), Attribute("category", "peer"),
        ], content: .nodes(sent.children("enc") + (sent.child("device-identity").map { [$0] } ?? [])))
        delivered["recipient"] = .jid(phone.jid.nonAD)
        guard let request = await agent.receivePeer(delivered), request.hasProtocolMessage else { return ack }
        if request.protocolMessage.hasAppStateSyncKeyRequest {
            // A companion lacks app-state keys: the phone shares those it has (`Phone/WASim+AppState.swift`).
            await answerKeyRequest((sender, request.protocolMessage.appStateSyncKeyRequest.keyIds.map(\.keyID)), phone: phone.number)
            return ack
        }
        guard request.protocolMessage.type == .peerDataOperationRequestMessage else { return ack }
        peerRequestsReceived += 1
        guard !silentPhones.contains(phone.number) else { return ack }
        guard request.protocolMessage.peerDataOperationRequestMessage.peerDataOperationRequestType == .placeholderMessageResend
        else { return ack }
        var response = WAE2E_Message()
        response.protocolMessage.type = .peerDataOperationRequestResponseMessage
        response.protocolMessage.peerDataOperationRequestResponseMessage.peerDataOperationRequestType = .placeholderMessageResend
        response.protocolMessage.peerDataOperationRequestResponseMessage.stanzaID = sent.string("id") ?? ""
        for asked in request.protocolMessage.peerDataOperationRequestMessage.placeholderMessageResendRequest.prefix(32) {
            guard let held = await heldMessage(asked.messageKey, phone: phone.number),
                  let bytes = try? held.serializedData() else { continue }
            var result = WAE2E_PeerDataOperationRequestResponseMessage.PeerDataOperationResult()
            result.placeholderMessageResendResponse.webMessageInfoBytes = bytes
            response.protocolMessage.peerDataOperationRequestResponseMessage.peerDataOperationResult.append(result)
        }
        guard !response.protocolMessage.peerDataOperationRequestResponseMessage.peerDataOperationResult.isEmpty else { return ack }
        do {
            var bundles: [JID: PreKeyBundle] = [:]
            for device in try await agent.needingBundles([sender]) {
                if let bundle = await bundle(for: device) { bundles[device] = bundle }
            }
            let id = MessageID.random(ownJID: phone.jid)
            let node = try await agent.directMessage(
                id: id, to: phone.jid.nonAD, message: response, recipient: [], own: [sender], bundles: bundles)
            let answer = Node("message", [
                Attribute("from", .jid(phone.jid)), Attribute("id", .string(id)), Attribute("t", .string(String(nowSeconds))),
                Attribute("type", "text"), Attribute("category", "peer"), Attribute("recipient", .jid(phone.jid.nonAD)),
            ], content: .nodes(Self.encs(in: node)))
            placeholderRequestsAnswered += 1
            await deliver(answer, to: sender)
        } catch {
            logger.warning("phone could not answer a placeholder resend", metadata: ["error": "\(type(of: error))"])
        }
        return ack
    }
}

extension WASim {
    /// What the phone holds of a message its linked device asks about: kept for it (`sendUndecryptable`),
    /// or a text the phone itself received in that chat.
    func heldMessage(_ key: WACommon_MessageKey, phone number: String) async -> WAWeb_WebMessageInfo? {
        if let held = placeholders[number]?[key.id] { return held.info }
        guard let agent = agents[number], let chat = JID(key.remoteJid) else { return nil }
        let want = phoneNumberForm(chat.nonAD)
        guard let got = await agent.received.last(where: {
            $0.id == key.id && !$0.isFromMe && $0.text != nil && phoneNumberForm($0.chat.nonAD) == want
        }) else { return nil }
        var info = WAWeb_WebMessageInfo()
        info.key = key
        info.key.fromMe = false
        info.message.conversation = got.text ?? ""
        info.messageTimestamp = UInt64(got.timestamp)
        if chat.server == JID.groupServer { info.participant = phoneNumberForm(got.sender.nonAD).description }
        return info
    }
}
