import CZlib
import Foundation

/// The plaintext inside a Noise transport frame: one flag byte, then the
/// binary node bytes. Flag bit 0x02 means the node bytes are zlib-compressed
/// (zlib format, with header). Hands out node bytes; parsing them is WABinary's job.
public enum TransportPayload {
    public static let compressedFlag: UInt8 = 0x02
    /// Inflated payloads larger than this are refused (a zlib bomb guard).
    public static let defaultMaxInflatedSize = 16 << 20

    /// Flag byte 0 + node bytes: WhatsApp clients send uncompressed.
    public static func encode(_ nodeBytes: some DataProtocol) -> Data {
        Data([0]) + Data(nodeBytes)
    }

    /// Flag byte 0x02 + zlib(node bytes): what the server may send, for tests and the simulator.
    public static func encodeCompressed(_ nodeBytes: some DataProtocol) throws -> Data {
        Data([compressedFlag]) + (try deflate(Data(nodeBytes)))
    }

    /// Returns the node bytes, inflating when flagged, refusing output beyond `maxInflatedSize`.
    public static func decode(_ payload: some DataProtocol, maxInflatedSize: Int = defaultMaxInflatedSize) throws -> Data {
        let payload = Data(payload)
        guard let flags = payload.first else {
            throw WAClientError(.payloadMalformed, "empty transport payload")
        }
        let body = payload.dropFirst()
        if flags & compressedFlag == 0 { return Data(body) }
        return try inflate(Data(body), maxSize: maxInflatedSize)
    }

    /// Inflates a zlib stream (with header) of at most `maxSize` bytes: a history-sync blob is one.
    public static func inflateZlib(_ input: some DataProtocol, maxSize: Int) throws -> Data {
        try inflate(Data(input), maxSize: maxSize)
    }

    private static func inflate(_ input: Data, maxSize: Int) throws -> Data {
        var stream = z_stream()
        guard wab_inflate_init(&stream) == Z_OK else {
            throw WAClientError(.payloadMalformed, "zlib inflateInit failed")
        }
        defer { inflateEnd(&stream) }
        var output = Data()
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        var input = [UInt8](input)
        let status: Int32 = input.withUnsafeMutableBufferPointer { inBuffer in
            stream.next_in = inBuffer.baseAddress
            stream.avail_in = uInt(inBuffer.count)
            while true {
                let result: Int32 = chunk.withUnsafeMutableBufferPointer { outBuffer in
                    stream.next_out = outBuffer.baseAddress
                    stream.avail_out = uInt(outBuffer.count)
                    return CZlib.inflate(&stream, Z_NO_FLUSH)
                }
                let produced = chunk.count - Int(stream.avail_out)
                if output.count + produced > maxSize { return Z_MEM_ERROR }
                output.append(contentsOf: chunk[0..<produced])
                if result == Z_STREAM_END { return Z_STREAM_END }
                if result != Z_OK { return result }
                if stream.avail_in == 0 && produced == 0 { return Z_BUF_ERROR }
            }
        }
        switch status {
        case Z_STREAM_END: return output
        case Z_MEM_ERROR: throw WAClientError(.payloadTooLarge, "inflated payload exceeds \(maxSize) bytes")
        default: throw WAClientError(.payloadMalformed, "zlib stream is corrupt or truncated (\(status))")
        }
    }

    private static func deflate(_ input: Data) throws -> Data {
        var stream = z_stream()
        guard wab_deflate_init(&stream, Z_DEFAULT_COMPRESSION) == Z_OK else {
            throw WAClientError(.payloadMalformed, "zlib deflateInit failed")
        }
        defer { deflateEnd(&stream) }
        var input = [UInt8](input)
        var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(input.count))))
        let result: Int32 = input.withUnsafeMutableBufferPointer { inBuffer in
            output.withUnsafeMutableBufferPointer { outBuffer in
                stream.next_in = inBuffer.baseAddress
                stream.avail_in = uInt(inBuffer.count)
                stream.next_out = outBuffer.baseAddress
                stream.avail_out = uInt(outBuffer.count)
                return CZlib.deflate(&stream, Z_FINISH)
            }
        }
        guard result == Z_STREAM_END else { throw WAClientError(.payloadMalformed, "zlib deflate failed (\(result))") }
        return Data(output[0..<(output.count - Int(stream.avail_out))])
    }
}
