import Crypto
import Foundation
import WACrypto

/// The encrypted transport after a finished handshake: one key and counter
/// per direction, AES-256-GCM with empty associated data, each ciphertext in
/// its own frame.
///
/// A value type the connection owner keeps and mutates; it hands out bytes
/// (framed ciphertext to send, plaintexts received), never nodes. Its
/// description never shows the keys.
public struct NoiseSession: Sendable, CustomStringConvertible {
    private let writeKey: SendableKey
    private let readKey: SendableKey
    private var writeCounter: UInt32 = 0
    private var readCounter: UInt32 = 0
    private var writeExhausted = false
    private var readExhausted = false
    private var decoder: FrameDecoder

    init(writeKey: Data, readKey: Data, decoder: FrameDecoder) {
        self.writeKey = SendableKey(writeKey)
        self.readKey = SendableKey(readKey)
        self.decoder = decoder
    }

    /// Encrypts one plaintext and frames it, ready to write to the socket.
    public mutating func seal(_ plaintext: some DataProtocol) throws -> Data {
        guard !writeExhausted else { throw WAClientError(.nonceExhausted, "write counter used up") }
        let length = plaintext.count + 16
        guard length <= FrameCodec.maxFrameSize else {
            throw WAClientError(.frameTooLarge, "sealed frame of \(length) bytes exceeds \(FrameCodec.maxFrameSize)")
        }
        let box: AES.GCM.SealedBox
        do {
            box = try AES.GCM.seal(
                plaintext, using: writeKey.key, nonce: AES.GCM.Nonce(data: NoiseSymmetricState.nonce(writeCounter)))
        } catch {
            throw WAClientError(.invalidState, "AES-GCM seal failed: \(error)")
        }
        (writeCounter, writeExhausted) = Self.advance(writeCounter)
        // Length prefix, ciphertext and tag written once into one buffer (no intermediate copy).
        var frame = Data(capacity: 3 + length)
        frame.append(contentsOf: [UInt8(truncatingIfNeeded: length >> 16), UInt8(truncatingIfNeeded: length >> 8), UInt8(truncatingIfNeeded: length)])
        frame.append(box.ciphertext)
        frame.append(box.tag)
        return frame
    }

    /// Feeds received bytes (any chunking) and returns the plaintexts of every whole frame.
    public mutating func receive(_ chunk: some DataProtocol) throws -> [Data] {
        try decoder.feed(chunk).map { try open($0) }
    }

    /// Decrypts one unframed ciphertext (for callers that do their own framing).
    public mutating func open(_ ciphertext: Data) throws -> Data {
        guard !readExhausted else { throw WAClientError(.nonceExhausted, "read counter used up") }
        guard ciphertext.count >= 16 else {
            throw WAClientError(.decryptFailed, "frame shorter than the 16-byte GCM tag")
        }
        let plaintext: Data
        do {
            let box = try AES.GCM.SealedBox(
                nonce: AES.GCM.Nonce(data: NoiseSymmetricState.nonce(readCounter)),
                ciphertext: ciphertext.prefix(ciphertext.count - 16), tag: ciphertext.suffix(16))
            plaintext = try AES.GCM.open(box, using: readKey.key)
        } catch {
            throw WAClientError(.decryptFailed, "transport frame \(readCounter) did not decrypt", underlying: .badMAC)
        }
        (readCounter, readExhausted) = Self.advance(readCounter)
        return plaintext
    }

    public var description: String { "NoiseSession(sent: \(writeCounter), received: \(readCounter))" }

    /// swift-crypto 3.x does not mark SymmetricKey Sendable, though it is an
    /// immutable value once made; this box states that for our two keys.
    private struct SendableKey: @unchecked Sendable {
        let key: SymmetricKey
        init(_ bytes: Data) { key = SymmetricKey(data: bytes) }
    }

    private static func advance(_ counter: UInt32) -> (UInt32, Bool) {
        counter == .max ? (counter, true) : (counter + 1, false)
    }
}
