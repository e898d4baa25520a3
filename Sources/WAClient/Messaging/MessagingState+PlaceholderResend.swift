import Foundation
import WABinary
import WAProto
import WASignal

/// Placeholder resend (whatsmeow: `BuildUnavailableMessageRequest` sent with `SendPeerMessage`,
/// answered by a `PEER_DATA_OPERATION_REQUEST_RESPONSE_MESSAGE` that `handlePlaceholderResendResponse`
/// turns into messages): when the server hands us `<unavailable>` instead of ciphertext, our own
/// phone is asked for the message, and its answer is delivered as the message.
extension MessagingState {
    /// Requests kept (message id → request id), newest first out when full.
    static let maxPlaceholderRequests = 1_000
    /// Results read from one response (whatsmeow sends one per request).
    static let maxPlaceholderResults = 32

    /// Asks our phone for a message the server could not hand us (`<unavailable>`); false when not asked.
    func requestFromPhone(_ failed: UndecryptableMessage, ctx: Context, client: WAClient) async -> Bool {
        var key = WACommon_MessageKey()
        key.remoteJid = failed.chat.nonAD.description
        key.fromMe = failed.sender.user == ctx.own.user
        key.id = failed.id
        if failed.isGroup { key.participant = failed.sender.nonAD.description }
        var request = WAE2E_PeerDataOperationRequestMessage.PlaceholderMessageResendRequest()
        request.messageKey = key
        var message = WAE2E_Message()
        message.protocolMessage.type = .peerDataOperationRequestMessage
        message.protocolMessage.peerDataOperationRequestMessage.peerDataOperationRequestType = .placeholderMessageResend
        message.protocolMessage.peerDataOperationRequestMessage.placeholderMessageResendRequest = [request]
        let requestID = MessageID.random(ownJID: ctx.own)
        do {
            try await client.send(try await peerMessage(message, id: requestID, ctx: ctx, client: client))
        } catch {
            logger.warning("placeholder resend not requested", metadata: [
                "id": "\(failed.id)", "error": "\((error as? WAClientError)?.code.rawValue ?? "\(type(of: error))")",
            ])
            return false
        }
        notePlaceholderRequest(failed.id, request: requestID)
        logger.info("placeholder resend requested from our phone", metadata: ["id": "\(failed.id)"])
        return true
    }

    /// A peer message (`category=peer`) to our own primary phone: encrypted for it alone
    /// (whatsmeow preparePeerMessageNode), opening a session from its bundle when there is none.
    private func peerMessage(_ message: WAE2E_Message, id: String, ctx: Context, client: WAClient) async throws -> Node {
        let phonePN = JID(user: ctx.own.user, device: 0, server: ctx.own.server)
        // Our sessions with the phone live under its LID once the account is LID-migrated.
        var phone = phonePN
        if let lid = ctx.record.lid, lid.server == JID.lidServer {
            let lidPhone = JID(user: lid.user, device: 0, server: JID.lidServer)
            if (try? await ctx.store.loadSession(for: SignalAddress(jid: lidPhone)))??.hasCurrentSession == true { phone = lidPhone }
        }
        let sender = MessageSender(store: ctx.store, ownDevice: ctx.own, deviceIdentity: ctx.deviceIdentity)
        let plaintext: Data
        do { plaintext = try message.serializedData() } catch { throw WAClientError(.payloadInvalid, "peer message does not serialize") }
        var bundle: PreKeyBundle?
        if try await !sender.devicesNeedingBundles([phone]).isEmpty {
            bundle = try await fetchPeerBundle(phone, client: client)
        }
        let (ciphertext, _) = try await sender.encrypt(MessagePadding.pad(plaintext), for: phone, bundle: bundle)
        var children = [Node("meta", attributes: ["appdata": "default"]), MessageSender.encNode(ciphertext)]
        if case .preKey = ciphertext { children.append(.binary("device-identity", ctx.deviceIdentity)) }
        return Node("message", attributes: [
            "id": .string(id), "type": "text", "category": "peer", "to": .jid(phonePN.nonAD),
        ], children: children)
    }

    private func fetchPeerBundle(_ device: JID, client: WAClient) async throws -> PreKeyBundle? {
        let answer = try await client.sendIQ(PreKeyNodes.bundleQueryIQ(id: MessageID.random(), devices: [device], reason: nil))
        for (asked, result) in try PreKeyNodes.parseBundles(answer) where asked.user == device.user {
            if case .success(let bundle) = result { return bundle }
        }
        return nil
    }

    /// Failed messages waiting for their delayed phone request, at most.
    static let maxPhoneRequestTimers = 256
    /// Recovered ids remembered for dropping the other copy.
    static let maxRecoveredIDs = 1_000

    /// After a failed decrypt answered by our first retry receipt, our phone is asked for the
    /// message once `phoneRequestDelay` passed without the sender's retry (whatsmeow
    /// delayedRequestMessageFromPhone; groups included, as there). Not for our own devices'
    /// messages: the phone would be asked about what it or a sibling sent, which the retry covers.
    /// Returns the delay when scheduled.
    func schedulePhoneRequest(_ failed: UndecryptableMessage, ctx: Context, client: WAClient) -> Duration? {
        guard let delay = configuration.phoneRequestDelay, failed.retryCount == 1 else { return nil }
        let ownUsers = [ctx.own.user, ctx.record.lid?.user].compactMap { $0 }
        guard !ownUsers.contains(failed.sender.user), phoneRequestTimers[failed.id] == nil,
              placeholderRequests[failed.id] == nil else { return nil }
        guard phoneRequestTimers.count < Self.maxPhoneRequestTimers else {
            logger.warning("phone request not scheduled: too many pending", metadata: ["id": "\(failed.id)"])
            return nil
        }
        // The client is held weakly: a waiting timer must not keep a dropped client alive.
        phoneRequestTimers[failed.id] = Task { [weak client] in
            do { try await Task.sleep(for: delay) } catch { return } // cancelled: the retry arrived, or the link closed
            guard let client else { return }
            await self.firePhoneRequest(failed, client: client)
        }
        return delay
    }

    /// The link closed: pending phone requests are dropped, as whatsmeow's
    /// clearDelayedMessageRequests does; after the reconnect the server's offline queue
    /// brings the sender's retry, or the message stays reported as undecryptable.
    func cancelPhoneRequests() {
        for timer in phoneRequestTimers.values { timer.cancel() }
        phoneRequestTimers.removeAll()
    }

    private func firePhoneRequest(_ failed: UndecryptableMessage, client: WAClient) async {
        guard phoneRequestTimers.removeValue(forKey: failed.id) != nil else { return }
        guard let ctx = try? await context(client) else { return }
        _ = await requestFromPhone(failed, ctx: ctx, client: client)
    }

    /// A message decrypted normally (the sender's retry, or a first delivery): stops its pending
    /// phone request. False when our phone's answer delivered it already (the copy is dropped).
    func settleRecovery(_ messageID: String) -> Bool {
        phoneRequestTimers.removeValue(forKey: messageID)?.cancel()
        if recoveredIDs.contains(messageID) {
            recoveryDuplicatesDropped += 1
            logger.info("second copy of a recovered message dropped (the retry, after the phone's answer)",
                        metadata: ["id": "\(messageID)"])
            return false
        }
        // Asked already: the phone's answer, when it comes, is the second copy.
        if placeholderRequests.removeValue(forKey: messageID) != nil { noteRecovered(messageID) }
        return true
    }

    func noteRecovered(_ messageID: String) {
        phoneRequestTimers.removeValue(forKey: messageID)?.cancel()
        guard recoveredIDs.insert(messageID).inserted else { return }
        recoveredOrder.append(messageID)
        if recoveredOrder.count > Self.maxRecoveredIDs { recoveredIDs.remove(recoveredOrder.removeFirst()) }
    }

    func notePlaceholderRequest(_ messageID: String, request: String) {
        if placeholderRequests.updateValue(request, forKey: messageID) == nil {
            placeholderOrder.append(messageID)
            if placeholderOrder.count > Self.maxPlaceholderRequests { placeholderRequests[placeholderOrder.removeFirst()] = nil }
        }
    }

    /// A placeholder-resend answer from our own phone (whatsmeow handleProtocolMessage).
    static func isPlaceholderResponse(_ message: ReceivedMessage) -> Bool {
        guard message.isFromMe, message.sender.device == 0, message.message.hasProtocolMessage else { return false }
        let proto = message.message.protocolMessage
        return proto.type == .peerDataOperationRequestResponseMessage && proto.hasPeerDataOperationRequestResponseMessage
    }

    /// The messages a placeholder-resend answer carries, for ids we asked about (others are
    /// ignored: a phone answers only what it was asked). Bounded by `maxPlaceholderResults`.
    func placeholderMessages(in message: ReceivedMessage) -> [ReceivedMessage] {
        let response = message.message.protocolMessage.peerDataOperationRequestResponseMessage
        var out: [ReceivedMessage] = []
        for part in response.peerDataOperationResult.prefix(Self.maxPlaceholderResults) {
            guard part.hasPlaceholderMessageResendResponse else { continue }
            guard let info = try? WAWeb_WebMessageInfo(serializedBytes: part.placeholderMessageResendResponse.webMessageInfoBytes) else {
                logger.warning("placeholder resend answer does not parse")
                continue
            }
            let key = info.key
            // Forgotten only once handed over: a redelivered answer (handler failed) still counts.
            guard placeholderRequests[key.id] != nil else {
                if recoveredIDs.contains(key.id) {
                    recoveryDuplicatesDropped += 1
                    logger.info("second copy of a recovered message dropped (the phone's answer, after the retry)",
                                metadata: ["id": "\(key.id)"])
                } else {
                    logger.info("placeholder resend answer for a message not asked about", metadata: ["id": "\(key.id)"])
                }
                continue
            }
            guard let chat = JID(key.remoteJid)?.nonAD else { continue }
            let isGroup = chat.server == JID.groupServer || chat.server == JID.broadcastServer
            let sender: JID
            if isGroup {
                guard let participant = JID(info.hasParticipant ? info.participant : key.participant) else { continue }
                sender = participant
            } else {
                sender = key.fromMe ? message.sender.nonAD : chat
            }
            var received = ReceivedMessage(
                id: key.id, chat: chat, sender: sender, isFromMe: key.fromMe, isGroup: isGroup,
                timestamp: Date(timeIntervalSince1970: TimeInterval(info.messageTimestamp)),
                pushName: info.hasPushName ? info.pushName : nil, content: MessageContent(info.message), message: info.message)
            received.addressingMode = sender.server == JID.lidServer ? .lid : .phoneNumber
            out.append(received)
        }
        return out
    }
}
