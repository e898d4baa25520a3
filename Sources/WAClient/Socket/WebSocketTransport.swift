import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOWebSocket

/// A client WebSocket carrying binary messages, on SwiftNIO. It moves bytes
/// only: inbound binary messages arrive in `inbound` in order (any
/// fragmentation is irrelevant because WhatsApp frames itself), `send`
/// writes one masked binary message. The stream ends when the link closes.
public final class WebSocketTransport: Sendable {
    public let inbound: AsyncStream<Data>
    private let channel: any Channel
    private let flow: InboundFlow

    private init(channel: any Channel, flow: InboundFlow) {
        self.channel = channel
        self.flow = flow
        inbound = flow.stream
    }

    /// Most inbound messages ever waiting for the consumer at once (diagnostics, tests).
    public var inboundPeak: Int { flow.peakBuffered }

    /// Opens `ws://` or `wss://` `url` with an `Origin` header.
    /// - Parameters:
    ///   - tlsTrustRoots: certificates to trust instead of the system's (tests, local simulator).
    ///   - maxFrameSize: largest WebSocket frame accepted.
    ///   - backlog: inbound messages buffered before the socket is no longer read (backpressure).
    public static func connect(
        url: URL, origin: String, tlsTrustRoots: [NIOSSLCertificate]? = nil, maxFrameSize: Int = 4 << 20,
        backlog: Int = 1024, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> WebSocketTransport {
        guard let host = url.host, let scheme = url.scheme?.lowercased(), scheme == "ws" || scheme == "wss" else {
            throw WAClientError(.connectFailed, "endpoint must be a ws:// or wss:// URL")
        }
        let secure = scheme == "wss"
        let port = url.port ?? (secure ? 443 : 80)
        let path = url.path.isEmpty ? "/" : url.path
        let sslContext: NIOSSLContext?
        if secure {
            var tls = TLSConfiguration.makeClientConfiguration()
            if let roots = tlsTrustRoots { tls.trustRoots = .certificates(roots) }
            do { sslContext = try NIOSSLContext(configuration: tls) } catch {
                throw WAClientError(.connectFailed, "TLS setup failed: \(error)")
            }
        } else {
            sslContext = nil
        }
        let flow = InboundFlow(highWater: backlog)
        let upgraded = group.next().makePromise(of: Void.self)
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                do {
                    let sync = channel.pipeline.syncOperations
                    if let sslContext {
                        try sync.addHandler(try NIOSSLClientHandler(context: sslContext, serverHostname: isIPAddress(host) ? nil : host))
                    }
                    let requestKey = Data((0..<16).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
                    let upgrader = NIOWebSocketClientUpgrader(
                        requestKey: requestKey, maxFrameSize: maxFrameSize, automaticErrorHandling: true,
                        upgradePipelineHandler: { channel, _ in
                            channel.eventLoop.makeCompletedFuture {
                                let sync = channel.pipeline.syncOperations
                                if let request = try? sync.handler(type: UpgradeRequestHandler.self) {
                                    sync.removeHandler(request, promise: nil)
                                }
                                try sync.addHandler(WebSocketInboundHandler(flow: flow))
                                upgraded.succeed()
                            }
                        })
                    let requestHandler = UpgradeRequestHandler(
                        host: host, port: port, path: path, origin: origin, secure: secure, upgraded: upgraded)
                    try sync.addHTTPClientHandlers(
                        leftOverBytesStrategy: .forwardBytes,
                        withClientUpgrade: (upgraders: [upgrader], completionHandler: { _ in }))
                    try sync.addHandler(requestHandler)
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: host, port: port).get()
        } catch {
            flow.finish()
            throw WAClientError(.connectFailed, "could not reach \(host):\(port): \(error)")
        }
        do {
            // Cancellation (a connect timeout) closes the channel, which fails the upgrade: nothing leaks.
            try await withTaskCancellationHandler {
                try await upgraded.futureResult.get()
            } onCancel: {
                channel.close(promise: nil)
            }
            if Task.isCancelled { throw CancellationError() }
        } catch {
            channel.close(promise: nil)
            flow.finish()
            throw WAClientError(.connectFailed, "WebSocket upgrade failed: \(error)")
        }
        return WebSocketTransport(channel: channel, flow: flow)
    }

    /// Writes one binary message (masked, as a client must).
    public func send(_ data: Data) {
        var buffer = channel.allocator.buffer(capacity: data.count)
        buffer.writeBytes(data)
        let frame = WebSocketFrame(fin: true, opcode: .binary, maskKey: .random(), data: buffer)
        channel.writeAndFlush(frame, promise: nil)
    }

    /// Closes the link; `inbound` ends soon after.
    public func close() {
        channel.close(promise: nil)
    }

    private static func isIPAddress(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }
}

/// Sends the HTTP upgrade request when the channel becomes active and fails
/// the upgrade promise if the link closes or errors first.
private final class UpgradeRequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    let host: String
    let port: Int
    let path: String
    let origin: String
    let secure: Bool
    let upgraded: EventLoopPromise<Void>

    init(host: String, port: Int, path: String, origin: String, secure: Bool, upgraded: EventLoopPromise<Void>) {
        self.host = host
        self.port = port
        self.path = path
        self.origin = origin
        self.secure = secure
        self.upgraded = upgraded
    }

    func channelActive(context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        let defaultPort = secure ? 443 : 80
        headers.add(name: "Host", value: port == defaultPort ? host : "\(host):\(port)")
        headers.add(name: "Origin", value: origin)
        headers.add(name: "Content-Length", value: "0")
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // A response that is not an upgrade: refuse.
        if case .head(let head) = unwrapInboundIn(data) {
            upgraded.fail(WAClientError(.connectFailed, "server answered HTTP \(head.status.code) instead of upgrading"))
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        upgraded.fail(WAClientError(.connectFailed, "connection closed before the WebSocket upgrade"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        upgraded.fail(error)
        context.close(promise: nil)
    }
}

/// After the upgrade: binary/continuation payloads into an `InboundFlow` (which
/// holds socket reads back while its consumer is behind), pings answered, close
/// frames and errors close the channel.
public final class WebSocketInboundHandler: ChannelDuplexHandler {
    public typealias InboundIn = WebSocketFrame
    public typealias OutboundIn = WebSocketFrame
    public typealias OutboundOut = WebSocketFrame

    private let flow: InboundFlow
    private let masks: Bool

    public init(flow: InboundFlow, masks: Bool = true) {
        self.flow = flow
        self.masks = masks
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        flow.onResume { channel.read() }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        flow.onResume(nil)  // the closure holds the channel
    }

    public func read(context: ChannelHandlerContext) {
        if flow.admitRead() { context.read() }
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .binary, .continuation, .text:
            flow.push(Data(frame.unmaskedData.readableBytesView))
        case .ping:
            var payload = frame.unmaskedData
            let pong = WebSocketFrame(
                fin: true, opcode: .pong, maskKey: masks ? .random() : nil,
                data: payload.readSlice(length: payload.readableBytes) ?? context.channel.allocator.buffer(capacity: 0))
            context.writeAndFlush(wrapOutboundOut(pong), promise: nil)
        case .connectionClose:
            context.close(promise: nil)
        default:
            break
        }
    }

    public func channelInactive(context: ChannelHandlerContext) {
        flow.finish()
        context.fireChannelInactive()
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        flow.finish()
        context.close(promise: nil)
    }
}
