import Bridge
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// An HTTP-level refusal with a stable code.
struct AdminError: Error, Sendable {
    let status: HTTPResponse.Status
    let code: String
    let message: String
    init(_ status: HTTPResponse.Status, _ code: String, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }
}

/// The status each device error code maps to.
func status(for code: DeviceError.Code) -> HTTPResponse.Status {
    switch code {
    case .idInvalid, .idRequired, .invalidSettings: .badRequest
    case .notFound: .notFound
    case .exists, .alreadyLoggedIn, .notLoggedIn, .ownedElsewhere: .conflict
    case .invalidPhoneNumber, .loginFailed: .unprocessableContent
    default: .serviceUnavailable
    }
}

/// Turns every error into `{"error": {"code", "message"}}` with its status; nothing
/// a client sends becomes a 500.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: AdminMetrics

    func handle(_ request: Request, context: Context,
                next: (Request, Context) async throws -> Response) async throws -> Response {
        let response = await answer(request, context: context, next: next)
        if response.status.code >= 400, let code = response.headers[Self.codeHeader] {
            metrics.countError(code)
        }
        return response
    }

    static var codeHeader: HTTPField.Name { HTTPField.Name("X-Error-Code")! }

    private func answer(_ request: Request, context: Context,
                        next: (Request, Context) async throws -> Response) async -> Response {
        do {
            return try await next(request, context)
        } catch let e as AdminError {
            return Self.response(e.status, e.code, e.message)
        } catch let e as DeviceError {
            return Self.response(status(for: e.code), e.code.rawValue, e.message)
        } catch let e as HTTPError {
            let code: String = switch e.status.code {
            case 400: "BAD_REQUEST"
            case 401: "UNAUTHORIZED"
            case 404: "NOT_FOUND"
            case 405: "METHOD_NOT_ALLOWED"
            case 413: "PAYLOAD_TOO_LARGE"
            case 422: "UNPROCESSABLE"
            default: e.status.code >= 500 ? "INTERNAL" : "BAD_REQUEST"
            }
            return Self.response(e.status, code, e.body ?? e.status.reasonPhrase)
        } catch {
            context.logger.error("unexpected error", metadata: ["error": "\(String(describing: type(of: error)))"])
            return Self.response(.internalServerError, "INTERNAL", "internal error")
        }
    }

    static func response(_ status: HTTPResponse.Status, _ code: String, _ message: String) -> Response {
        let data = (try? JSONEncoder().encode(ErrorBody(error: .init(code: code, message: message)))) ?? Data("{}".utf8)
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=utf-8"
        headers[codeHeader] = code
        if status == .unauthorized { headers[.wwwAuthenticate] = "Bearer" }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// `{"error": {"code", "message"}}`.
struct ErrorBody: Encodable {
    struct Inner: Encodable { let code: String; let message: String }
    let error: Inner
}

/// Bearer-token auth (constant-time compare of SHA-256 digests). `/healthz` and `/readyz`
/// stay open for probes. Browsers cannot set headers on `<img>`, so GET requests may
/// also carry the token as `?token=` (the device page passes its own on).
struct AuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: String?

    func handle(_ request: Request, context: Context,
                next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let token, request.uri.path != "/healthz", request.uri.path != "/readyz" else {
            return try await next(request, context)
        }
        var given: String?
        if let auth = request.headers[.authorization], auth.lowercased().hasPrefix("bearer ") {
            given = String(auth.dropFirst(7)).trimmingCharacters(in: .whitespaces)
        } else if request.method == .get, let q = request.uri.queryParameters.get("token") {
            given = q
        }
        guard let given, constantTimeEqual(given, token) else {
            throw AdminError(.unauthorized, "UNAUTHORIZED", "a valid bearer token is required")
        }
        return try await next(request, context)
    }
}

/// Compares the SHA-256 digests of both strings byte by byte without an early exit,
/// so neither the token's content nor its length leaks through timing.
func constantTimeEqual(_ a: String, _ b: String) -> Bool {
    let x = Array(SHA256.hash(data: Data(a.utf8))), y = Array(SHA256.hash(data: Data(b.utf8)))
    var diff: UInt8 = 0
    for i in 0..<x.count { diff |= x[i] ^ y[i] }
    return diff == 0
}
