import Foundation
import Hummingbird
import NIOCore
import WABinary
import WAClient
import WACrypto

/// The simulator's loopback HTTP control API (for `wabridge-sim`, the demo and benchmarks):
///
///     GET    /info                              ports, root key (hex), endpoints
///     GET    /stats                                          live connections, devices
///     POST   /devices  {"devices":[{"phone","noiseKey","identityKey","registrationId","signedPreKey"?,"preKeys"?}]}
///                                                            register companions as linked before (no pairing) → JIDs
///     POST   /phones           {"number","pushName"?}        → phone
///     GET    /phones/{number}/devices                        → linked device JIDs
///     POST   /phones/{number}/scan  {"qr"}                   → linked device JID
///     POST   /phones/{number}/code  {"code"}                 → linked device JID
///     GET    /devices/{jid}                                  lid, online, uploaded prekeys
///     DELETE /devices/{jid}                                  unlink (device_removed)
///     POST   /devices/{jid}/faults  {"kind", …}              inject a fault
///     POST   /phones/{number}/messages {"to","text","id"?}   the phone sends a text → {"id"}
///     POST   /phones/{number}/media {"to","kind","mimetype","data"(base64),"caption"?,"fileName"?,"id"?}  → {"id"}
///     GET    /phones/{number}/messages/{id}/media            the media the phone received, decrypted and checked → {"data"}
///     GET    /phones/{number}/messages                       what the phone received (id, chat, sender, text, kind, fromMe, t, ref, mentions)
///     POST   /phones/{number}/read  {"chat","ids"}           the phone reads messages (read receipt)
///     GET    /phones/{number}/messages/{id}/status           sent | delivered | read | played | unknown
///     POST   /groups  {"creator","participants","subject"}   → {"jid"}
///     POST   /groups/{jid}/messages {"from","text","id"?}    a member phone sends a group text → {"id"}
public enum ControlAPI {
    struct GroupRequest: Decodable { let creator: String; let participants: [String]; let subject: String }
    struct GroupSendRequest: Decodable { let from: String; let text: String; let id: String? }
    struct SendRequest: Decodable { let to: String; let text: String; let id: String? }
    struct MediaRequest: Decodable {
        let to: String
        /// image | video | audio | document
        let kind: String
        let mimetype: String
        /// The file, base64.
        let data: String
        let caption: String?
        let fileName: String?
        let id: String?
    }
    struct MediaResponse: ResponseEncodable { let data: String }
    struct ReadRequest: Decodable { let chat: String; let ids: [String] }
    struct MessageIDResponse: ResponseEncodable { let id: String }
    struct StatusResponse: ResponseEncodable { let id: String; let status: String }
    struct ReceivedResponse: ResponseEncodable {
        struct Item: Encodable {
            let id: String
            let chat: String
            let sender: String
            let text: String?
            let kind: String
            let fromMe: Bool
            let t: Int
            let ref: String?
            let mentions: [String]
        }
        let messages: [Item]
    }
    struct PhoneRequest: Decodable { let number: String; let pushName: String? }
    /// Companion devices linked before (a restored store, a load run): keys in base64, public halves only.
    struct ProvisionRequest: Decodable {
        struct SignedKey: Decodable { let id: UInt32; let key: String; let signature: String }
        struct OneTimeKey: Decodable { let id: UInt32; let key: String }
        struct Device: Decodable {
            let phone: String
            let noiseKey: String
            let identityKey: String
            let registrationId: UInt32
            let signedPreKey: SignedKey?
            let preKeys: [OneTimeKey]?
        }
        let devices: [Device]
    }
    struct ProvisionResponse: ResponseEncodable { let jids: [String] }
    struct StatsResponse: ResponseEncodable { let connections: Int; let devices: Int }
    /// Most devices one provisioning request registers.
    static let maxProvisionBatch = 5_000
    struct ScanRequest: Decodable { let qr: String }
    struct CodeRequest: Decodable { let code: String }
    struct FaultRequest: Decodable {
        /// drop | stream_error | fail_next_login | fail_now | ignore_pings | resume_pings | slow
        let kind: String
        let code: Int?
        let reason: Int?
        let banCode: Int?
        let expire: Int?
        let milliseconds: Int?
    }
    struct PhoneResponse: ResponseEncodable { let number: String; let lid: String; let accountKey: String }
    struct DeviceResponse: ResponseEncodable { let jid: String }
    struct DevicesResponse: ResponseEncodable { let devices: [String] }
    struct DeviceInfoResponse: ResponseEncodable {
        let jid: String
        let lid: String
        let online: Bool
        let uploadedPreKeys: Int
        let keyIndex: UInt32
    }
    struct InfoResponse: ResponseEncodable {
        let port: Int
        let tlsPort: Int?
        let rootPublicKey: String
        let endpoint: String
        let tlsCertificatePEM: String?
        /// The loopback media host's port (nil when it is off).
        let mediaPort: Int?
    }

    /// The router for `sim`.
    public static func router(for sim: WASim) -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/info") { _, _ -> InfoResponse in
            let port = await sim.port
            return InfoResponse(
                port: port, tlsPort: await sim.tlsPort,
                rootPublicKey: sim.rootPublicKey.rawRepresentation.map { String(format: "%02x", $0) }.joined(),
                endpoint: sim.endpoint(port: port).absoluteString, tlsCertificatePEM: sim.tls?.certificatePEM,
                mediaPort: await sim.mediaPort)
        }
        router.get("/stats") { _, _ -> StatsResponse in
            StatsResponse(connections: await sim.connectionCount, devices: await sim.deviceCount)
        }
        router.post("/devices") { request, context -> ProvisionResponse in
            // Bodies of thousands of devices: Hummingbird's 2 MB default is too small.
            let buffer = try await request.body.collect(upTo: 64 << 20)
            let body: ProvisionRequest
            do { body = try JSONDecoder().decode(ProvisionRequest.self, from: Data(buffer.readableBytesView)) } catch {
                throw HTTPError(.badRequest, message: "body is not a provisioning request")
            }
            guard body.devices.count <= maxProvisionBatch else {
                throw HTTPError(.badRequest, message: "at most \(maxProvisionBatch) devices per request")
            }
            // Everything is checked before anything is registered: a bad entry changes nothing.
            let checked = try body.devices.map(checkProvisioned)
            var jids: [String] = []
            jids.reserveCapacity(checked.count)
            for device in checked {
                jids.append(await sim.provisionDevice(
                    phone: device.phone, noiseKey: device.noiseKey, identityKey: device.identityKey,
                    registrationID: device.registrationID, signedPreKey: device.signedPreKey, preKeys: device.preKeys).description)
            }
            return ProvisionResponse(jids: jids)
        }
        router.post("/phones") { request, context -> PhoneResponse in
            let body = try await request.decode(as: PhoneRequest.self, context: context)
            guard !body.number.isEmpty, body.number.allSatisfy(\.isNumber) else {
                throw HTTPError(.badRequest, message: "number must be digits")
            }
            let phone = await sim.createPhone(number: body.number, pushName: body.pushName ?? "Sim User")
            return PhoneResponse(
                number: phone.number, lid: phone.lid.description,
                accountKey: phone.accountKey.publicKey.rawRepresentation.base64EncodedString())
        }
        router.get("/phones/:number/devices") { _, context -> DevicesResponse in
            let number = try context.parameters.require("number")
            return DevicesResponse(devices: await sim.linkedDevices(of: number).map(\.description))
        }
        router.post("/phones/:number/scan") { request, context -> DeviceResponse in
            let number = try context.parameters.require("number")
            let body = try await request.decode(as: ScanRequest.self, context: context)
            do {
                return DeviceResponse(jid: try await sim.scanQR(phone: number, qr: body.qr).description)
            } catch let error as SimError {
                throw HTTPError(.unprocessableContent, message: error.description)
            }
        }
        router.post("/phones/:number/code") { request, context -> DeviceResponse in
            let number = try context.parameters.require("number")
            let body = try await request.decode(as: CodeRequest.self, context: context)
            do {
                return DeviceResponse(jid: try await sim.enterPairingCode(phone: number, code: body.code).description)
            } catch let error as SimError {
                throw HTTPError(.unprocessableContent, message: error.description)
            }
        }
        router.post("/phones/:number/messages") { request, context -> MessageIDResponse in
            let number = try context.parameters.require("number")
            let body = try await request.decode(as: SendRequest.self, context: context)
            let to = try parseJID(body.to)
            do {
                return MessageIDResponse(id: try await sim.sendText(from: number, to: to, text: body.text, id: body.id))
            } catch let error as SimError {
                throw HTTPError(.unprocessableContent, message: error.description)
            }
        }
        router.post("/phones/:number/media") { request, context -> MessageIDResponse in
            let number = try context.parameters.require("number")
            let body = try await request.decode(as: MediaRequest.self, context: context)
            guard let kind = MessageContent.MediaInfo.Kind(rawValue: body.kind), kind != .sticker else {
                throw HTTPError(.badRequest, message: "kind must be image, video, audio or document")
            }
            guard let data = Data(base64Encoded: body.data) else { throw HTTPError(.badRequest, message: "data must be base64") }
            do {
                return MessageIDResponse(id: try await sim.sendMedia(
                    from: number, to: try parseJID(body.to), data: data, kind: kind, mimetype: body.mimetype,
                    caption: body.caption, fileName: body.fileName, id: body.id))
            } catch let error as SimError {
                throw HTTPError(.unprocessableContent, message: error.description)
            }
        }
        router.get("/phones/:number/messages/:id/media") { _, context -> MediaResponse in
            let number = try context.parameters.require("number")
            let id = try context.parameters.require("id")
            do {
                return MediaResponse(data: try await sim.downloadMedia(phone: number, id: id).base64EncodedString())
            } catch let error as SimError {
                throw HTTPError(.notFound, message: error.description)
            } catch let error as WAClientError {
                throw HTTPError(.unprocessableContent, message: error.code.rawValue)
            }
        }
        router.get("/phones/:number/messages") { _, context -> ReceivedResponse in
            let number = try context.parameters.require("number")
            guard await sim.phone(number) != nil else { throw HTTPError(.notFound, message: "no such phone") }
            return ReceivedResponse(messages: await sim.receivedMessages(phone: number).map {
                .init(id: $0.id, chat: $0.chat.description, sender: $0.sender.description, text: $0.text, kind: $0.kind,
                      fromMe: $0.isFromMe, t: $0.timestamp, ref: $0.ref, mentions: $0.mentions)
            })
        }
        router.post("/phones/:number/read") { request, context -> HTTPResponse.Status in
            let number = try context.parameters.require("number")
            let body = try await request.decode(as: ReadRequest.self, context: context)
            do { try await sim.markRead(phone: number, ids: body.ids, chat: try parseJID(body.chat)) } catch let error as SimError {
                throw HTTPError(.unprocessableContent, message: error.description)
            }
            return .noContent
        }
        router.get("/phones/:number/messages/:id/status") { _, context -> StatusResponse in
            let number = try context.parameters.require("number")
            let id = try context.parameters.require("id")
            let status: String
            switch await sim.messageStatus(phone: number, id: id) {
            case .sent: status = "sent"
            case .delivered: status = "delivered"
            case .read: status = "read"
            case .played: status = "played"
            case .failed: status = "failed"
            case nil: status = "unknown"
            }
            return StatusResponse(id: id, status: status)
        }
        router.post("/groups") { request, context -> DeviceResponse in
            let body = try await request.decode(as: GroupRequest.self, context: context)
            do {
                return DeviceResponse(jid: try await sim.createGroup(
                    creator: body.creator, participants: body.participants, subject: body.subject).description)
            } catch let error as SimError {
                throw HTTPError(.unprocessableContent, message: error.description)
            }
        }
        router.post("/groups/:jid/messages") { request, context -> MessageIDResponse in
            let group = try parseJID(try context.parameters.require("jid"))
            let body = try await request.decode(as: GroupSendRequest.self, context: context)
            do {
                return MessageIDResponse(id: try await sim.sendGroupText(from: body.from, group: group, text: body.text, id: body.id))
            } catch let error as SimError {
                throw HTTPError(.unprocessableContent, message: error.description)
            }
        }
        router.get("/devices/:jid") { _, context -> DeviceInfoResponse in
            let jid = try parseJID(try context.parameters.require("jid"))
            guard let device = await sim.device(jid) else { throw HTTPError(.notFound, message: "no such device") }
            return DeviceInfoResponse(
                jid: device.jid.description, lid: device.lid.description, online: await sim.isOnline(jid),
                uploadedPreKeys: device.uploadedPreKeys, keyIndex: device.keyIndex)
        }
        router.delete("/devices/:jid") { _, context -> HTTPResponse.Status in
            let jid = try parseJID(try context.parameters.require("jid"))
            await sim.unlink(device: jid)
            return .noContent
        }
        router.post("/devices/:jid/faults") { request, context -> HTTPResponse.Status in
            let jid = try parseJID(try context.parameters.require("jid"))
            let body = try await request.decode(as: FaultRequest.self, context: context)
            let fault: SimFault
            switch body.kind {
            case "drop": fault = .dropConnection
            case "stream_error": fault = .streamError(code: body.code ?? 515)
            case "fail_next_login": fault = .failNextLogin(reason: body.reason ?? 401, code: body.banCode, expire: body.expire)
            case "fail_now": fault = .failNow(reason: body.reason ?? 401, code: body.banCode, expire: body.expire)
            case "ignore_pings": fault = .ignorePings(true)
            case "resume_pings": fault = .ignorePings(false)
            case "withhold_acks": fault = .withholdAcks(true)
            case "resume_acks": fault = .withholdAcks(false)
            case "slow": fault = .slowAnswers(body.milliseconds.map { .milliseconds($0) })
            default: throw HTTPError(.badRequest, message: "unknown fault kind")
            }
            await sim.inject(fault, device: jid)
            return .noContent
        }
        return router
    }

    struct ProvisionedDevice {
        let phone: String
        let noiseKey: Curve25519PublicKey
        let identityKey: Curve25519PublicKey
        let registrationID: UInt32
        let signedPreKey: (id: UInt32, key: Data, signature: Data)?
        let preKeys: [UInt32: Data]
    }

    /// One entry of `POST /devices`, refused as the server refuses an upload: keys of the wrong size,
    /// a signed prekey whose signature does not verify under the identity, ids out of their 24 bits.
    static func checkProvisioned(_ d: ProvisionRequest.Device) throws -> ProvisionedDevice {
        func key(_ base64: String, _ what: String) throws -> Data {
            guard let data = Data(base64Encoded: base64), data.count == 32 else {
                throw HTTPError(.badRequest, message: "\(what) must be 32 bytes of base64")
            }
            return data
        }
        guard !d.phone.isEmpty, d.phone.allSatisfy(\.isNumber) else { throw HTTPError(.badRequest, message: "phone must be digits") }
        guard (1...16_380).contains(d.registrationId) else { throw HTTPError(.badRequest, message: "registrationId must be 1...16380") }
        let noise = try Curve25519PublicKey(rawRepresentation: try key(d.noiseKey, "noiseKey"))
        let identity = try Curve25519PublicKey(rawRepresentation: try key(d.identityKey, "identityKey"))
        var signed: (id: UInt32, key: Data, signature: Data)?
        if let s = d.signedPreKey {
            let value = try key(s.key, "signedPreKey.key")
            guard s.id < 1 << 24 else { throw HTTPError(.badRequest, message: "signed prekey id out of 24 bits") }
            guard let signature = Data(base64Encoded: s.signature),
                  ServerPreKeys.verifies(signature: signature, key: value, identity: identity) else {
                throw HTTPError(.unprocessableContent, message: "signed prekey of \(d.phone) does not verify under its identity key")
            }
            signed = (s.id, value, signature)
        }
        let oneTime = d.preKeys ?? []
        guard oneTime.count <= SimDevice.maxPreKeys else {
            throw HTTPError(.badRequest, message: "at most \(SimDevice.maxPreKeys) prekeys per device")
        }
        var preKeys: [UInt32: Data] = [:]
        for k in oneTime {
            guard k.id < 1 << 24 else { throw HTTPError(.badRequest, message: "prekey id out of 24 bits") }
            preKeys[k.id] = try key(k.key, "preKeys.key")
        }
        return ProvisionedDevice(phone: d.phone, noiseKey: noise, identityKey: identity, registrationID: d.registrationId,
                                 signedPreKey: signed, preKeys: preKeys)
    }

    static func parseJID(_ text: String) throws -> JID {
        guard let decoded = text.removingPercentEncoding, let jid = try? JID(parsing: decoded) else {
            throw HTTPError(.badRequest, message: "not a JID")
        }
        return jid
    }

    /// The control application on `127.0.0.1:port` (0 = any free port; `onServerRunning` sees the bound channel).
    public static func application(
        for sim: WASim, port: Int, onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        Application(
            router: router(for: sim), configuration: .init(address: .hostname("127.0.0.1", port: port)),
            onServerRunning: onServerRunning)
    }
}
