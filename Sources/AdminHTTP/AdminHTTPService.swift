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

    /// No signals of its own: Hummingbird's default (SIGTERM, SIGINT) would stop the admin server
    /// before the worker's ServiceGroup reaches it, which that group reports as the service
    /// having finished unexpectedly (exit 1 on a clean SIGTERM, seen in CI). The worker's group
    /// alone handles signals and shuts the admin server down first.
    public func run() async throws { try await application.runService(gracefulShutdownSignals: []) }

    static func isLoopback(_ host: String) -> Bool {
        host == "127.0.0.1" || host == "::1" || host == "localhost" || host.hasPrefix("127.")
    }
}
