import Foundation

/// The padding WhatsApp puts on a serialised `Message` before Signal
/// encryption: N bytes, each of value N, so the ciphertext length hides the
/// exact plaintext length.
///
/// We send N in 1...15 (as whatsmeow and Baileys do). On receive we accept
/// any N ≥ 1 that fits and whose N bytes all equal N, because other clients
/// are not bound to our range; anything else is `signal.invalid_message`.
public enum MessagePadding {
    public static func pad(_ plaintext: some DataProtocol) -> Data {
        var generator = SystemRandomNumberGenerator()
        return pad(plaintext, count: UInt8.random(in: 1...15, using: &generator))
    }

    /// Pads with `count` bytes (1...15); tests use it for fixed output.
    public static func pad(_ plaintext: some DataProtocol, count: UInt8) -> Data {
        precondition((1...15).contains(count), "WhatsApp padding is 1 to 15 bytes")
        var out = Data(plaintext)
        out.append(contentsOf: repeatElement(count, count: Int(count)))
        return out
    }

    public static func unpad(_ padded: some DataProtocol) throws -> Data {
        let bytes = Data(padded)
        guard let last = bytes.last else {
            throw SignalError(.invalidMessage, "padded plaintext is empty")
        }
        let n = Int(last)
        guard n >= 1, n <= bytes.count else {
            throw SignalError(.invalidMessage, "padding length \(n) does not fit \(bytes.count) bytes")
        }
        guard bytes.suffix(n).allSatisfy({ $0 == last }) else {
            throw SignalError(.invalidMessage, "padding bytes are not all \(n)")
        }
        return Data(bytes.prefix(bytes.count - n))
    }
}
