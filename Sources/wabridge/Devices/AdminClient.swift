import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// Where the admin HTTP API is and how to authenticate, shared by `devices` and `health`.
struct AdminOptions: ParsableArguments {
    @Option(name: .customLong("admin-url"),
            help: "Admin HTTP base URL [WABRIDGE_ADMIN_URL] (default http://127.0.0.1:$WABRIDGE_ADMIN_PORT, port 8080).")
    var adminURL: String?
    @Option(name: .long, help: "Bearer token [WABRIDGE_ADMIN_TOKEN].")
    var token: String?

    func client() -> AdminClient {
        let env = ProcessInfo.processInfo.environment
        // Beside a worker (a container's healthcheck) its own admin port is the default.
        var base = adminURL ?? env["WABRIDGE_ADMIN_URL"] ?? "http://127.0.0.1:\(env["WABRIDGE_ADMIN_PORT"] ?? "8080")"
        while base.hasSuffix("/") { base.removeLast() }
        let token = token ?? env["WABRIDGE_ADMIN_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        return AdminClient(baseURL: base, token: token)
    }
}

/// A small client of the admin HTTP API (`schemas/admin-openapi.yaml`) over
/// AsyncHTTPClient. An API error (`{"error": {"code", "message"}}`) becomes a
/// `CLIError` with the API's code.
struct AdminClient: Sendable {
    let baseURL: String
    let token: String?

    struct Response {
        var status: Int
        var body: Data
    }

    /// Sends the request; statuses 400 and above throw.
    func call(_ method: HTTPMethod, _ path: String, json: [String: String]? = nil) async throws(CLIError) -> Response {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let json {
            let data = (try? JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])) ?? Data("{}".utf8)
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: data))
        }
        // One request per process: a refused connection fails at once instead of being
        // retried until the deadline (the pool's default, made for long-lived servers).
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout.connect = .seconds(10)
        let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
        let outcome: Result<(Int, Data), any Error>
        do {
            let response = try await client.execute(request, timeout: .seconds(60))
            let body = try await response.body.collect(upTo: 4 << 20)
            outcome = .success((Int(response.status.code), Data(body.readableBytesView)))
        } catch {
            outcome = .failure(error)
        }
        try? await client.shutdown()
        let status: Int
        let body: Data
        switch outcome {
        case .success(let answer): (status, body) = answer
        case .failure(let error): throw CLIError("ADMIN_UNREACHABLE", "\(baseURL): \(error)", exit: .unreachable)
        }
        guard status < 400 else {
            struct Envelope: Decodable { struct E: Decodable { let code: String; let message: String? }; let error: E }
            if let e = try? JSONDecoder().decode(Envelope.self, from: body) {
                throw CLIError(e.error.code, "\(e.error.message ?? "") (HTTP \(status))")
            }
            throw CLIError("HTTP_\(status)", String(decoding: body.prefix(200), as: UTF8.self))
        }
        return Response(status: status, body: body)
    }

    /// `/devices/<id>` with the ID percent-encoded as one path segment.
    static func devicePath(_ id: String, _ tail: String = "") -> String {
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove("/")
        return "/devices/" + (id.addingPercentEncoding(withAllowedCharacters: allowed) ?? id) + tail
    }
}
