import Bridge
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// The admin HTTP server as a lifecycle service.
public struct AdminHTTPService: Service {
    public let host: String
    public let port: Int
    let application: Application<RouterResponder<BasicRequestContext>>

    /// Refuses to listen beyond loopback without a token (as `BridgeConfiguration` does).
    public init(manager: DeviceManager, host: String, port: Int, options: AdminAPI.Options,
                logger: Logger, onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) throws {
        if options.token == nil, !Self.isLoopback(host) {
            throw DeviceError(.unavailable, "the admin endpoint needs a token to listen on \(host)")
        }
        self.host = host
        self.port = port
        let router = AdminAPI.router(manager: manager, options: options)
        application = Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "wabridge"),
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? 0) },
            logger: logger)
    }

    public func run() async throws { try await application.runService() }

    static func isLoopback(_ host: String) -> Bool {
        host == "127.0.0.1" || host == "::1" || host == "localhost" || host.hasPrefix("127.")
    }
}
