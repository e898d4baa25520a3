import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import Synchronization
import WAClient
import XCTest

/// A burst bigger than the client's inbound buffer, read by a slow consumer,
/// arrives whole and in order on the same link: the transport stops reading
/// the socket instead of dropping the link (which made the server send the
/// burst again, forever, for an account with a large offline backlog).
final class InboundBackpressureTests: XCTestCase {
    func testABurstLargerThanTheBacklogArrivesWholeOverOneLink() async throws {
        let count = 3_000, backlog = 16
        // 4 KB each, 12 MB in all: far more than the socket buffers hold, so only a
        // client that stops reading keeps its buffer near `backlog`.
        let server = try await FloodServer.start(messages: count, size: 4_096)
        defer { server.stop() }
        let socket = try await WebSocketTransport.connect(
            url: URL(string: "ws://127.0.0.1:\(server.port)/flood")!, origin: "https://web.whatsapp.com", backlog: backlog)
        // The server writes everything at once; the consumer starts late and reads slowly at first.
        try await Task.sleep(for: .milliseconds(300))
        var received: [Int] = []
        for await chunk in socket.inbound {
            received.append(Int(String(decoding: chunk.prefix(while: { $0 != 0x20 }), as: UTF8.self)) ?? -1)
            if received.count < 100 { try await Task.sleep(for: .milliseconds(1)) }
            if received.count == count { break }
        }
        XCTAssertEqual(received.count, count, "every message of the burst arrived before the stream ended")
        XCTAssertTrue(received == Array(0..<count),
                      "in order, none twice (first out of place at \(zip(received, 0...).first { $0 != $1 }.map { "\($0.1)" } ?? "-"))")
        XCTAssertEqual(server.connections, 1, "one link: it was never dropped and opened again")
        // One socket read may bring some messages past the mark; thousands would mean no backpressure.
        XCTAssertLessThanOrEqual(socket.inboundPeak, backlog + 256, "reading stopped while the consumer was behind")
        socket.close()
    }
}

/// A WebSocket server that writes `messages` numbered binary frames to each client as soon as it connects.
private final class FloodServer: Sendable {
    let channel: any Channel
    let port: Int
    private let counter: Counter

    var connections: Int { counter.value.withLock { $0 } }

    private init(channel: any Channel, counter: Counter) {
        self.channel = channel
        self.counter = counter
        port = channel.localAddress?.port ?? 0
    }

    static func start(messages: Int, size: Int) async throws -> FloodServer {
        let counter = Counter()
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                let upgrader = NIOWebSocketServerUpgrader(
                    shouldUpgrade: { channel, _ in channel.eventLoop.makeSucceededFuture(HTTPHeaders()) },
                    upgradePipelineHandler: { channel, _ in
                        counter.value.withLock { $0 += 1 }
                        for i in 0..<messages {
                            var buffer = channel.allocator.buffer(capacity: size)
                            buffer.writeString(String(i) + " ")
                            buffer.writeRepeatingByte(0x2E, count: max(0, size - buffer.readableBytes))
                            channel.write(WebSocketFrame(fin: true, opcode: .binary, data: buffer), promise: nil)
                        }
                        channel.flush()
                        return channel.eventLoop.makeSucceededVoidFuture()
                    })
                return channel.pipeline.configureHTTPServerPipeline(
                    withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in }))
            }
        let channel = try await bootstrap.bind(host: "127.0.0.1", port: 0).get()
        return FloodServer(channel: channel, counter: counter)
    }

    func stop() { channel.close(promise: nil) }
}

private final class Counter: Sendable {
    let value = Mutex(0)
}
