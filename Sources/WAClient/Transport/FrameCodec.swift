import Foundation

/// WhatsApp's framing under Noise: a connection header sent once by the
/// client (`W` `A` 6 3: magic 6, dictionary version 3), then frames of a
/// 3-byte big-endian length followed by that many bytes.
///
/// Frames may be split across WebSocket messages or several may share one,
/// so `FrameDecoder` takes arbitrary chunks and hands back whole frames.
public enum FrameCodec {
    /// The header: "WA", magic 6, dictionary version 3. It is also the Noise prologue.
    public static let header = Data([0x57, 0x41, 0x06, 0x03])
    /// Largest edge routing info sent or taken in the `ED` preamble.
    public static let maxRoutingInfo = 1_024

    /// What a client sends before its header when the server gave it edge routing info
    /// (`<ib><edge_routing><routing_info>`): "ED" 0 1, a 3-byte length, the info (Baileys
    /// noise-handler.ts). The Noise prologue stays the `WA` header alone.
    public static func routingPreamble(_ info: Data) -> Data {
        let n = info.count
        return Data([0x45, 0x44, 0, 1, UInt8(truncatingIfNeeded: n >> 16), UInt8(truncatingIfNeeded: n >> 8), UInt8(truncatingIfNeeded: n)]) + info
    }
    /// The largest length three bytes can carry.
    public static let maxFrameSize = (1 << 24) - 1

    /// Prefixes `payload` with its 3-byte length.
    public static func frame(_ payload: some DataProtocol) throws -> Data {
        let count = payload.count
        guard count <= maxFrameSize else {
            throw WAClientError(.frameTooLarge, "frame of \(count) bytes exceeds \(maxFrameSize)")
        }
        var out = Data(capacity: count + 3)
        out.append(UInt8(truncatingIfNeeded: count >> 16))
        out.append(UInt8(truncatingIfNeeded: count >> 8))
        out.append(UInt8(truncatingIfNeeded: count))
        out.append(contentsOf: payload)
        return out
    }
}

/// Reassembles frames from chunks of any size.
///
/// A server-side decoder (`expectsHeader`) first checks the 4-byte
/// connection header. A short read leaves what it has buffered and returns
/// no frame, like ByteBuffer's `read*` on short input.
public struct FrameDecoder: Sendable {
    private var buffer: [UInt8] = []
    private var readIndex = 0
    private var awaitingHeader: Bool
    private let maxFrameSize: Int

    /// - Parameters:
    ///   - expectsHeader: true on the server side, which receives the client's header first.
    ///   - maxFrameSize: a frame longer than this is an error (default: the wire maximum).
    /// The routing info of an `ED` preamble the client sent before its header (server side), if any.
    public private(set) var routingInfo: Data?

    public init(expectsHeader: Bool = false, maxFrameSize: Int = FrameCodec.maxFrameSize) {
        self.awaitingHeader = expectsHeader
        self.maxFrameSize = min(maxFrameSize, FrameCodec.maxFrameSize)
    }

    /// Bytes received but not yet part of a whole frame.
    public var bufferedByteCount: Int { buffer.count - readIndex }

    /// Adds a chunk and returns every frame now complete, in order.
    public mutating func feed(_ chunk: some DataProtocol) throws -> [Data] {
        buffer.append(contentsOf: chunk)
        var frames: [Data] = []
        if awaitingHeader {
            // An edge-routing preamble may come first: "ED" 0 1, a 3-byte length, the routing info.
            if routingInfo == nil, buffer.count > readIndex, buffer[readIndex] == 0x45 {
                guard buffer.count - readIndex >= 7 else { return [] }
                guard buffer[readIndex + 1] == 0x44, buffer[readIndex + 2] == 0, buffer[readIndex + 3] == 1 else {
                    throw WAClientError(.badHeader, "edge routing preamble is not ED 0 1")
                }
                let length = Int(buffer[readIndex + 4]) << 16 | Int(buffer[readIndex + 5]) << 8 | Int(buffer[readIndex + 6])
                guard length > 0, length <= FrameCodec.maxRoutingInfo else {
                    throw WAClientError(.badHeader, "edge routing info of \(length) bytes")
                }
                guard buffer.count - readIndex >= 7 + length else { return [] }
                routingInfo = Data(buffer[(readIndex + 7)..<(readIndex + 7 + length)])
                readIndex += 7 + length
            }
            let available = buffer.count - readIndex
            let header = [UInt8](FrameCodec.header)
            let compared = min(available, header.count)
            guard Array(buffer[readIndex..<readIndex + compared]) == Array(header[0..<compared]) else {
                throw WAClientError(.badHeader, "connection header is not WA 6 3")
            }
            guard available >= header.count else { return [] }
            readIndex += header.count
            awaitingHeader = false
        }
        while buffer.count - readIndex >= 3 {
            let length = Int(buffer[readIndex]) << 16 | Int(buffer[readIndex + 1]) << 8 | Int(buffer[readIndex + 2])
            guard length <= maxFrameSize else {
                throw WAClientError(.frameTooLarge, "incoming frame of \(length) bytes exceeds \(maxFrameSize)")
            }
            guard buffer.count - readIndex - 3 >= length else { break }
            frames.append(Data(buffer[(readIndex + 3)..<(readIndex + 3 + length)]))
            readIndex += 3 + length
        }
        // Compact once the consumed prefix dominates, so memory stays bounded.
        if readIndex > 0 && readIndex * 2 >= buffer.count {
            buffer.removeFirst(readIndex)
            readIndex = 0
        }
        return frames
    }
}
