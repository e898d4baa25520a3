import Foundation
import Logging
import NIOCore
import NIOWebSocket
import WAClient
import WABinary
import WACrypto
import WAProto

/// One client connection to the simulator: the Noise responder, then the
/// stanza loop. It owns its session and pending server→client IQs; shared
/// state (devices, phones, refs) lives in `WASim`.
actor SimConnection {
    nonisolated let id: Int
    private let channel: any Channel
    private let sim: WASim
    private let logger = Logger(label: "wabridge.sim.connection")
    private var session: NoiseSession?
    private(set) var peerStatic: Curve25519PublicKey?
    /// The edge routing info the client sent in its `ED` preamble, if any.
    private(set) var routingInfo: Data?
    /// Set while a registering client waits to be paired.
    private(set) var registration: WAWa6_ClientPayload.DevicePairingRegistrationData?
    private(set) var device: JID?
    private var closed = false
    private var ignorePings = false
    /// Set by `SimFault.withholdAcks`: message acks held back (bounded, oldest dropped).
    private var heldAcks: [Node]?
    var answerDelay: Duration?
    private var closeGrace: TimeAmount = .seconds(1)
    private var pending: [String: CheckedContinuation<Node, any Error>] = [:]
    private var idCounter = 0
    /// False until `<success>` and the outbox went out: later stanzas wait here, in order.
    private var ready = false
    private var held: [Node] = []

    init(id: Int, channel: any Channel, sim: WASim) {
        self.id = id
        self.channel = channel
        self.sim = sim
    }

    // MARK: Life

    func run(inbound: AsyncStream<Data>, staticKey: Curve25519KeyPair, chain: Data, limits: WASim.Limits) async {
        closeGrace = .nanoseconds(Int64(limits.closeGrace.components.seconds) * 1_000_000_000
            + limits.closeGrace.components.attoseconds / 1_000_000_000)
        var responder = NoiseResponder(staticKey: staticKey, certificateChain: chain, maxFrameSize: limits.maxFrameSize)
        let watchdog = Task { [channel] in
            try? await Task.sleep(for: limits.handshakeTimeout)
            if !Task.isCancelled { channel.close(promise: nil) }
        }
        defer { watchdog.cancel() }
        for await chunk in inbound {
            do {
                if session == nil {
                    for action in try responder.receive(chunk) {
                        switch action {
                        case .send(let bytes): write(bytes)
                        case .established(let result):
                            watchdog.cancel()
                            session = result.session
                            peerStatic = result.peerStatic
                            routingInfo = result.routingInfo
                            await handlePayload(result.clientPayload)
                            for plaintext in result.earlyPlaintexts { try await process(plaintext) }
                        }
                    }
                } else {
                    guard let plaintexts = try session?.receive(chunk) else { break }
                    for plaintext in plaintexts { try await process(plaintext) }
                }
            } catch {
                // Garbage, a wrong handshake, an oversized or undecodable frame: this client goes, others stay.
                close()
            }
            if closed { break }
        }
        close()
        for (_, continuation) in pending { continuation.resume(throwing: SimError("sim.closed", "connection closed")) }
        pending = [:]
        await sim.connectionEnded(self)
    }

    func close() {
        guard !closed else { return }
        closed = true
        channel.close(promise: nil)
    }

    // MARK: Writing

    private func write(_ bytes: Data) {
        guard !closed else { return }
        var buffer = channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .binary, data: buffer), promise: nil)
    }

    func send(_ node: Node) {
        guard !closed, session != nil, let bytes = try? BinaryEncoder.encode(node),
              let frame = try? session!.seal(TransportPayload.encode(bytes)) else { return }
        write(frame)
    }

    /// Sends a stanza (stream error, failure), stops reading, and closes the link after a grace
    /// period unless the client closes first. A client must see the stanza before the EOF:
    /// whatsmeow, for one, treats a bare EOF right after pairing as the end and never acts on the
    /// 515 that preceded it.
    func sendAndClose(_ node: Node) {
        send(node)
        closed = true
        let channel = self.channel
        channel.eventLoop.scheduleTask(in: closeGrace) { channel.close(promise: nil) }
    }

    func setIgnorePings(_ value: Bool) { ignorePings = value }

    func setWithholdAcks(_ value: Bool) {
        if value {
            if heldAcks == nil { heldAcks = [] }
        } else {
            let late = heldAcks ?? []
            heldAcks = nil
            for ack in late { send(ack) }
        }
    }

    /// The ack for a message this device sent, unless `withholdAcks` holds it back.
    func sendMessageAck(_ ack: Node) {
        guard heldAcks != nil else { return send(ack) }
        heldAcks!.append(ack)
        if heldAcks!.count > 256 { heldAcks!.removeFirst() }
    }

    /// Writes bytes outside the Noise session (fault injection).
    func writeRaw(_ bytes: Data) { write(bytes) }

    /// Sends an IQ to the client and waits for its answer.
    func request(_ iq: Node, timeout: Duration = .seconds(10)) async throws -> Node {
        idCounter += 1
        let id = "sim.\(self.id).\(idCounter)"
        var node = iq
        node["id"] = .string(id)
        return try await withCheckedThrowingContinuation { continuation in
            pending[id] = continuation
            send(node)
            Task {
                try? await Task.sleep(for: timeout)
                self.expire(id)
            }
        }
    }

    private func expire(_ id: String) {
        pending.removeValue(forKey: id)?.resume(throwing: SimError.timeout("answer to \(id)"))
    }

    // MARK: Login

    private func handlePayload(_ bytes: Data) async {
        guard let payload = try? WAWa6_ClientPayload(serializedBytes: bytes) else {
            sendAndClose(Node("failure", [Attribute("reason", "400")]))
            return
        }
        let version = payload.userAgent.appVersion
        if !(await sim.accepts(version: [version.primary, version.secondary, version.tertiary])) {
            sendAndClose(Node("failure", [Attribute("reason", "405"), Attribute("location", "sim")]))
            return
        }
        if payload.hasDevicePairingData {
            let data = payload.devicePairingData
            guard data.eIdent.count == 32, data.eSkeyVal.count == 32, data.eSkeySig.count == 64, data.eRegid.count == 4 else {
                sendAndClose(Node("failure", [Attribute("reason", "400")]))
                return
            }
            registration = data
            let refs = await sim.issueRefs(for: self)
            send(Node("iq", [
                Attribute("from", .jid(.serverJID)), Attribute("type", "set"), Attribute("id", .string(nextServerID())),
                Attribute("xmlns", "md"),
            ], content: .nodes([Node("pair-device", content: .nodes(refs.map {
                Node("ref", content: .bytes(Array($0.utf8)))
            }))])))
            return
        }
        guard payload.hasUsername, let peerStatic else {
            sendAndClose(Node("failure", [Attribute("reason", "400")]))
            return
        }
        let jid = JID(user: String(payload.username), device: UInt16(truncatingIfNeeded: payload.device), server: JID.userServer)
        switch await sim.login(jid, noiseKey: peerStatic, connection: self) {
        case .failure(let node):
            sendAndClose(node)
        case .success(let lid, let offline):
            device = jid
            sendSuccess(lid: lid)
            for node in offline { send(node) }
            send(Node("ib", content: .nodes([Node("offline", [Attribute("count", .string(String(offline.count)))])])))
            ready = true
            for node in held { send(node) }
            held = []
        }
    }

    /// A server notification: now, or after the login's offline batch (not kept in the outbox).
    func deliverNotification(_ node: Node) { deliver(node) }

    /// A message or receipt routed to this device: now, or after the login's offline batch.
    func deliver(_ node: Node) {
        if ready { send(node) } else if held.count < 1_000 { held.append(node) }
    }

    private func sendSuccess(lid: JID) {
        send(Node("success", [
            Attribute("t", .string(String(Int(Date().timeIntervalSince1970)))),
            Attribute("props", "1"), Attribute("abprops", "1"), Attribute("location", "sim"),
            Attribute("creation", .string(String(Int(Date().timeIntervalSince1970)))),
            Attribute("lid", .jid(lid)),
        ]))
    }

    private func nextServerID() -> String {
        idCounter += 1
        return "sim.\(id).\(idCounter)"
    }

    // MARK: Stanzas

    private func process(_ plaintext: Data) async throws {
        let node = try BinaryDecoder.decode([UInt8](try TransportPayload.decode(plaintext, maxInflatedSize: 4 << 20)))
        switch node.tag {
        case "iq": await handleIQ(node)
        case "receipt":
            if let id = node.string("id") {
                send(Node("ack", [Attribute("class", "receipt"), Attribute("id", .string(id)), Attribute("from", .jid(.serverJID))]))
            }
            if let device {
                await sim.receiptAcks(node, by: device)
                await sim.routeReceipt(node, from: device)
            }
        case "message":
            if let device { await sim.routeMessage(node, from: device, connection: self) }
        case "ack":
            if let device { await sim.acked(node, by: device) }
        default: break // presence and the rest
        }
    }

    private func handleIQ(_ node: Node) async {
        guard let id = node.string("id") else { return }
        let type = node.string("type")
        if type == "result" || type == "error" {
            if let continuation = pending.removeValue(forKey: id) { continuation.resume(returning: node) }
            return
        }
        let xmlns = node.string("xmlns") ?? ""
        if xmlns == "w:p", ignorePings { return }
        if let delay = answerDelay { try? await Task.sleep(for: delay) }
        var children: [Node] = []
        switch xmlns {
        case "md" where type == "set" && node.child("remove-companion-device") != nil:
            // A companion logs itself out (whatsmeow client.go Logout): the server forgets it.
            guard let device, let target = node.child("remove-companion-device")?.jid("jid"), target == device else {
                return answerError(id: id, code: 403, text: "forbidden")
            }
            send(Node("iq", [Attribute("from", .jid(.serverJID)), Attribute("type", "result"), Attribute("id", .string(id))]))
            await sim.companionRemovedItself(device)
            return
        case "md":
            guard let reg = node.child("link_code_companion_reg") else { return notImplemented(node, id: id) }
            do {
                children = try await handleLinkCode(reg)
            } catch {
                answerError(id: id, code: 400, text: "bad-request")
                return
            }
        case "w:g2":
            if let device, let answer = await sim.groupAnswer(node, from: device) { send(answer) } else {
                answerError(id: id, code: 404, text: "item-not-found")
            }
            return
        case "w:sync:app:state":
            guard let device else { return answerError(id: id, code: 401, text: "not-authorized") }
            do { send(try await sim.appStateAnswer(node, from: device)) } catch { answerError(id: id, code: error.code, text: error.text) }
            return
        case "usync":
            do { send(try await sim.usyncAnswer(node)) } catch { answerError(id: id, code: 400, text: "bad-request") }
            return
        case "encrypt" where type == "get" && node.child("key") != nil:
            do { send(try await sim.bundleAnswer(node)) } catch { answerError(id: id, code: error.code, text: error.text) }
            return
        case "encrypt":
            if type == "get", node.child("count") == nil { return notImplemented(node, id: id) }
            if type == "get" {
                var count = 0
                if let device { count = await sim.preKeyCount(device) }
                children = [Node("count", [Attribute("value", .string(String(count)))])]
            } else if type == "set" {
                guard let device else { return answerError(id: id, code: 401, text: "not-authorized") }
                // The server's own parser and signature check (`ServerPreKeys`), not the client's.
                do { try await sim.storeUpload(try ServerPreKeys.parseUpload(node), for: device) } catch {
                    answerError(id: id, code: error.code, text: error.text)
                    return
                }
            }
        case "privacy" where type == "set" && node.child("tokens") != nil:
            guard let device else { return answerError(id: id, code: 401, text: "not-authorized") }
            do { try await sim.issuePrivacyTokens(node, by: device) } catch {
                return answerError(id: id, code: error.code, text: error.text)
            }
        case "abt" where node.child("props") != nil:
            children = [Node("props", [Attribute("protocol", "1"), Attribute("hash", "sim"), Attribute("refresh", "86400")])]
        case "w:m" where node.child("media_conn") != nil:
            send(await sim.mediaConnAnswer(to: node))
            return
        case "passive" where node.child("active") != nil || node.child("passive") != nil:
            break // an empty result, as the real server answers
        case "w:p" where node.child("ping") != nil:
            break
        case "urn:xmpp:whatsapp:dirty" where type == "set":
            // `<clean type timestamp>` after an `<ib><dirty>`: an empty result (whatsmeow appstate.go MarkNotDirty).
            guard let clean = node.child("clean"), let kind = clean.string("type") else {
                return answerError(id: id, code: 400, text: "bad-request")
            }
            if let device { await sim.cleaned(kind, by: device) }
        default:
            // As the real server: a query it does not know is an error, never an empty result.
            return notImplemented(node, id: id)
        }
        send(Node("iq", [
            Attribute("from", .jid(.serverJID)), Attribute("type", "result"), Attribute("id", .string(id)),
        ], content: children.isEmpty ? .none : .nodes(children)))
    }

    private func notImplemented(_ node: Node, id: String) {
        logger.info("iq not implemented", metadata: [
            "xmlns": "\(node.string("xmlns") ?? "-")", "type": "\(node.string("type") ?? "-")",
            "child": "\(node.children.first?.tag ?? "-")",
        ])
        answerError(id: id, code: 501, text: "feature-not-implemented")
    }

    private func answerError(id: String, code: Int, text: String) {
        send(Node("iq", [
            Attribute("from", .jid(.serverJID)), Attribute("type", "error"), Attribute("id", .string(id)),
        ], content: .nodes([Node("error", [Attribute("code", .string(String(code))), Attribute("text", .string(text))])])))
    }

    private func handleLinkCode(_ reg: Node) async throws -> [Node] {
        guard let registration, let phone = reg.jid("jid")?.user else { throw SimError.pairingFailed("not registering") }
        switch reg.string("stage") {
        case "companion_hello":
            guard let wrapped = reg.child("link_code_pairing_wrapped_companion_ephemeral_pub")?.bytes, wrapped.count == 80,
                  let noise = reg.child("companion_server_auth_key_pub")?.bytes,
                  Data(noise) == peerStatic?.rawRepresentation
            else { throw SimError.pairingFailed("bad companion_hello") }
            let ref = await sim.codeRequested(phone: phone, wrapped: Data(wrapped), connection: self)
            return [Node("link_code_companion_reg", content: .nodes([
                Node("link_code_pairing_ref", content: .bytes([UInt8](ref))),
            ]))]
        case "companion_finish":
            guard let bundle = reg.child("link_code_pairing_wrapped_key_bundle")?.bytes,
                  let identity = reg.child("companion_identity_public")?.bytes,
                  Data(identity) == registration.eIdent,
                  let ref = reg.child("link_code_pairing_ref")?.bytes
            else { throw SimError.pairingFailed("bad companion_finish") }
            try await sim.companionFinished(phone: phone, ref: Data(ref), bundle: Data(bundle))
            return []
        default:
            throw SimError.pairingFailed("unknown stage")
        }
    }

    // MARK: Pairing (the phone's side, driven by WASim)

    /// Sends a genuine pair-success, checks the client's pair-device-sign, then sends 515 and closes.
    func pair(phone: SimPhone, deviceJID: JID, lid: JID, keyIndex: UInt32, advSecret: Data) async throws -> SimDevice {
        guard let registration, let peerStatic else { throw SimError.pairingFailed("connection is not registering") }
        let companionIdentity = try Curve25519PublicKey(rawRepresentation: registration.eIdent)
        var details = WAAdv_ADVDeviceIdentity()
        details.rawID = UInt32.random(in: 1...UInt32.max)
        details.timestamp = UInt64(Date().timeIntervalSince1970)
        details.keyIndex = keyIndex
        details.accountType = .e2Ee
        details.deviceType = .e2Ee
        let detailsBytes: Data = try details.serializedBytes()
        var signed = WAAdv_ADVSignedDeviceIdentity()
        signed.details = detailsBytes
        signed.accountSignatureKey = phone.accountKey.publicKey.rawRepresentation
        signed.accountSignature = try XEdDSA.sign(
            Data([6, 0]) + detailsBytes + companionIdentity.rawRepresentation, privateKey: phone.accountKey.privateKey)
        let signedBytes: Data = try signed.serializedBytes()
        var container = WAAdv_ADVSignedDeviceIdentityHMAC()
        container.details = signedBytes
        container.hmac = Symmetric.hmacSHA256(key: advSecret, signedBytes)
        let containerBytes: Data = try container.serializedBytes()

        let answer = try await request(Node("iq", [
            Attribute("from", .jid(.serverJID)), Attribute("type", "set"), Attribute("xmlns", "md"),
            Attribute("t", .string(String(Int(Date().timeIntervalSince1970)))),
        ], content: .nodes([Node("pair-success", content: .nodes([
            Node("device-identity", content: .bytes([UInt8](containerBytes))),
            Node("platform", [Attribute("name", .string(phone.platform))]),
            Node("device", [Attribute("jid", .jid(deviceJID)), Attribute("lid", .jid(lid))]),
        ]))])))
        guard answer.string("type") == "result",
              let identityBytes = answer.child(path: "pair-device-sign", "device-identity")?.bytes,
              let returned = try? WAAdv_ADVSignedDeviceIdentity(serializedBytes: Data(identityBytes))
        else {
            let error = answer.child("error")
            throw SimError.pairingFailed("client refused pair-success: \(error?.string("code") ?? "?") \(error?.string("text") ?? "")")
        }
        let deviceMessage = Data([6, 1]) + returned.details + companionIdentity.rawRepresentation
            + phone.accountKey.publicKey.rawRepresentation
        guard returned.details == detailsBytes,
              XEdDSA.verify(returned.deviceSignature, for: deviceMessage, publicKey: companionIdentity)
        else { throw SimError.pairingFailed("device signature does not verify") }
        let regID = registration.eRegid.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        let device = SimDevice(
            jid: deviceJID, lid: lid, noiseKey: peerStatic, identityKey: companionIdentity,
            registrationID: regID, keyIndex: keyIndex,
            signedPreKey: (Self.uint(registration.eSkeyID), registration.eSkeyVal, registration.eSkeySig))
        // The real server restarts the stream after pairing; the client logs in again.
        sendAndClose(Node("stream:error", [Attribute("code", "515")]))
        return device
    }

    /// The phone's `primary_hello` for a pairing-code login.
    func sendPrimaryHello(ref: Data, wrappedPrimaryEphemeral: Data, primaryIdentity: Curve25519PublicKey) {
        send(Node("notification", [
            Attribute("from", .jid(.serverJID)), Attribute("type", "link_code_companion_reg"),
            Attribute("id", .string(nextServerID())), Attribute("t", .string(String(Int(Date().timeIntervalSince1970)))),
        ], content: .nodes([Node("link_code_companion_reg", [Attribute("stage", "primary_hello")], content: .nodes([
            Node("link_code_pairing_ref", content: .bytes([UInt8](ref))),
            Node("link_code_pairing_wrapped_primary_ephemeral_pub", content: .bytes([UInt8](wrappedPrimaryEphemeral))),
            Node("primary_identity_pub", content: .bytes([UInt8](primaryIdentity.rawRepresentation))),
        ]))])))
    }

    var companionIdentity: Data? { registration?.eIdent }

    static func uint(_ bytes: Data) -> UInt32 { bytes.prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) } }
}
