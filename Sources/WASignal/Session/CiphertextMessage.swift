import Foundation

/// An encrypted 1:1 message as it goes into `<enc type=…>`.
public enum CiphertextMessage: Sendable, Equatable {
    /// A double-ratchet message: `<enc type="msg">`.
    case whisper(Data)
    /// A session-opening message: `<enc type="pkmsg">`.
    case preKey(Data)

    /// The `type` attribute WhatsApp puts on `<enc>`.
    public var type: String {
        switch self {
        case .whisper: "msg"
        case .preKey: "pkmsg"
        }
    }

    public var serialized: Data {
        switch self {
        case .whisper(let data), .preKey(let data): data
        }
    }
}
