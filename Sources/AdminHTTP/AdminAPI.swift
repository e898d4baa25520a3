import Bridge
import BridgeStore
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Prometheus

/// The admin HTTP API over a `DeviceManager` (the contract's "Admin HTTP"):
///
///     GET  /devices                          list          POST /devices {"id"?}   create
///     GET  /devices/{id}                     get           DELETE /devices/{id}    delete
///     POST /devices/{id}/login/qr            current QR text + expiry (starts a QR login)
///     GET  /devices/{id}/login/qr.png        the current QR as a PNG
///     POST /devices/{id}/login/pair-code     {"phone"} → {"code": "XXXX-XXXX"}
///     POST /devices/{id}/logout              POST /devices/{id}/reconnect
///     GET  /devices/{id}/page                HTML page: state, QR refreshing while logging in
///     GET  /device, POST /login/qr, GET /login/qr.png, POST /login/pair-code, POST /logout,
///     GET  /devices/{id}/settings            the settings in use, and the device's own overrides
///     PATCH /devices/{id}/settings           JSON merge patch of the overrides (null: the default)
///     POST /reconnect, GET|PATCH /settings   shortcuts: X-Device-Id, or the default-device rule
///     GET  /healthz  /readyz  /metrics
///
/// Every error is `{"error": {"code", "message"}}`; bodies above `maxBodySize` get 413.
public enum AdminAPI {
    public struct Options: Sendable {
        /// Bearer token; nil = no auth (the server then listens on loopback only).
        public var token: String?
        /// Largest request body accepted.
        public var maxBodySize: Int
        public init(token: String? = nil, maxBodySize: Int = 16 * 1024) {
            self.token = token
            self.maxBodySize = maxBodySize
        }
    }

    struct CreateRequest: Decodable { let id: String? }
    struct PairRequest: Decodable { let phone: String }

    struct DeviceBody: ResponseEncodable {
        let id: String
        let state: String
        let jid: String?
        let lid: String?
        let pushName: String
        let createdAt: String
        let updatedAt: String
        /// The worker running the device now; absent when none does.
        let worker: String?
        init(_ d: DeviceInfo) {
            worker = d.worker
            id = d.id
            state = d.state.rawValue
            jid = d.jid
            lid = d.lid
            pushName = d.pushName
            createdAt = iso(d.createdAt)
            updatedAt = iso(d.updatedAt)
        }
    }
    struct DeviceList: ResponseEncodable { let devices: [DeviceBody] }
    struct QRBody: ResponseEncodable { let qr: String; let expiresAt: String; let expiresIn: Int }
    struct CodeBody: ResponseEncodable { let code: String }
    struct StatusBody: ResponseEncodable { let status: String }

    /// `history` is what the device runs with; `overrides` only what it chose itself, in the
    /// shape a PATCH takes.
    struct SettingsBody: ResponseEncodable {
        struct History: Encodable {
            let days: Int
            let maxMessages: Int
            let events: Bool
            enum CodingKeys: String, CodingKey { case days, maxMessages = "max_messages", events }
        }
        let history: History
        let overrides: DeviceSettings
        init(_ v: DeviceSettingsView) {
            history = History(days: v.history.bounds.maxAge.map { Int(($0 / 86_400).rounded()) } ?? 0,
                              maxMessages: v.history.bounds.maxMessages, events: v.history.publishMessages)
            overrides = v.stored
        }
    }

    static let deviceHeader = HTTPField.Name("X-Device-Id")!

    /// The router, with auth, error mapping and metrics.
    public static func router(manager: DeviceManager, options: Options = Options(),
                              metrics: AdminMetrics = AdminMetrics()) -> Router<BasicRequestContext> {
        let router = Router()
        router.middlewares.add(ErrorMiddleware(metrics: metrics))
        router.middlewares.add(AuthMiddleware(token: options.token))
        let maxBody = options.maxBodySize

        router.get("/healthz") { _, _ in StatusBody(status: "ok") }
        router.get("/readyz") { _, _ -> StatusBody in
            guard await manager.isReady else { throw DeviceError(.unavailable, "devices not loaded yet") }
            return StatusBody(status: "ready")
        }
        router.get("/metrics") { _, _ -> Response in
            let text = await metrics.render(manager: manager)
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
        }

        router.get("/devices") { _, _ in DeviceList(devices: try await manager.list().map(DeviceBody.init)) }
        router.post("/devices") { request, _ -> EditedResponse<DeviceBody> in
            var request = request
            let body = try await decode(CreateRequest.self, from: &request, max: maxBody, allowEmpty: true)
            let d = try await manager.create(id: body?.id)
            return EditedResponse(status: .created, response: DeviceBody(d))
        }

        // Device-scoped routes, once under /devices/{id} and once as shortcuts (X-Device-Id).
        typealias Resolve = @Sendable (Request, BasicRequestContext) async throws -> String
        let byPath: Resolve = { _, context in
            let id = try context.parameters.require("id")
            return try await manager.resolve(deviceID: id).rawValue
        }
        let byHeader: Resolve = { request, _ in
            try await manager.resolve(deviceID: request.headers[deviceHeader]).rawValue
        }
        for (prefix, resolve, getPath) in [("/devices/:id", byPath, "/devices/:id"), ("", byHeader, "/device")] {
            router.get(RouterPath(getPath)) { request, context in
                DeviceBody(try await manager.get(try await resolve(request, context)))
            }
            router.post(RouterPath("\(prefix)/login/qr")) { request, context -> QRBody in
                let id = try await resolve(request, context)
                let q = try await manager.startQRLogin(id)
                return QRBody(qr: q.text, expiresAt: iso(q.expiresAt),
                              expiresIn: max(0, Int(q.expiresAt.timeIntervalSinceNow.rounded(.down))))
            }
            router.get(RouterPath("\(prefix)/login/qr.png")) { request, context -> Response in
                let id = try await resolve(request, context)
                guard let q = try await manager.currentQR(id) else {
                    throw DeviceError(.notFound, "no QR code is showing for \(id): POST …/login/qr first")
                }
                let png: Data
                do { png = try QRImage.png(q.text) } catch { throw DeviceError(.unavailable, "QR encoding failed") }
                var headers = HTTPFields()
                headers[.contentType] = "image/png"
                headers[.cacheControl] = "no-store"
                return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: png)))
            }
            router.post(RouterPath("\(prefix)/login/pair-code")) { request, context -> CodeBody in
                let id = try await resolve(request, context)
                var request = request
                guard let body = try await decode(PairRequest.self, from: &request, max: maxBody, allowEmpty: false) else {
                    throw AdminError(.badRequest, "BAD_REQUEST", "a JSON body {\"phone\": …} is required")
                }
                return CodeBody(code: try await manager.pairWithCode(id, phone: body.phone))
            }
            router.post(RouterPath("\(prefix)/logout")) { request, context in
                let id = try await resolve(request, context)
                try await manager.logout(id)
                return DeviceBody(try await manager.get(id))
            }
            router.get(RouterPath("\(prefix)/settings")) { request, context in
                SettingsBody(try await manager.settings(try await resolve(request, context)))
            }
            router.patch(RouterPath("\(prefix)/settings")) { request, context -> SettingsBody in
                let id = try await resolve(request, context)
                var request = request
                let buffer: ByteBuffer
                do { buffer = try await request.collectBody(upTo: maxBody) } catch {
                    throw AdminError(.contentTooLarge, "PAYLOAD_TOO_LARGE", "request bodies are limited to \(maxBody) bytes")
                }
                return SettingsBody(try await manager.updateSettings(id, patch: Data(buffer.readableBytesView)))
            }
            router.post(RouterPath("\(prefix)/reconnect")) { request, context -> EditedResponse<DeviceBody> in
                let id = try await resolve(request, context)
                try await manager.reconnect(id)
                return EditedResponse(status: .accepted, response: DeviceBody(try await manager.get(id)))
            }
        }
        router.delete("/devices/:id") { _, context -> Response in
            let id = try context.parameters.require("id")
            try await manager.delete(try await manager.resolve(deviceID: id).rawValue)
            return Response(status: .noContent)
        }
        router.get("/devices/:id/page") { _, context -> Response in
            let id = try await manager.resolve(deviceID: try context.parameters.require("id")).rawValue
            let d = try await manager.get(id)
            var headers = HTTPFields()
            headers[.contentType] = "text/html; charset=utf-8"
            headers[.cacheControl] = "no-store"
            return Response(status: .ok, headers: headers,
                            body: .init(byteBuffer: ByteBuffer(string: DevicePage.html(d))))
        }
        return router
    }

    /// Reads at most `max` bytes and decodes JSON; nil for an empty body when allowed.
    static func decode<T: Decodable>(_ type: T.Type, from request: inout Request, max: Int,
                                     allowEmpty: Bool) async throws -> T? {
        let buffer: ByteBuffer
        do { buffer = try await request.collectBody(upTo: max) } catch {
            throw AdminError(.contentTooLarge, "PAYLOAD_TOO_LARGE", "request bodies are limited to \(max) bytes")
        }
        if buffer.readableBytes == 0 {
            if allowEmpty { return nil }
            throw AdminError(.badRequest, "BAD_REQUEST", "a JSON body is required")
        }
        do { return try JSONDecoder().decode(T.self, from: Data(buffer.readableBytesView)) } catch {
            throw AdminError(.badRequest, "BAD_JSON", "the body is not the JSON this endpoint expects")
        }
    }
}

func iso(_ date: Date) -> String {
    date.formatted(.iso8601)
}
