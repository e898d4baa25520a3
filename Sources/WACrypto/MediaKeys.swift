import Foundation

/// The four keys WhatsApp expands from a 32-byte media key:
/// HKDF-SHA256(mediaKey, no salt, info = type's string, 112 bytes) split as
/// iv 16 ‖ cipherKey 32 ‖ macKey 32 ‖ refKey 32.
public struct MediaKeys: Sendable, CustomStringConvertible {
    /// The HKDF info strings, one per kind of payload.
    public enum MediaType: String, Sendable, CaseIterable {
        case image = "WhatsApp Image Keys"
        case video = "WhatsApp Video Keys"
        case audio = "WhatsApp Audio Keys"
        case document = "WhatsApp Document Keys"
        case history = "WhatsApp History Keys"
        case appState = "WhatsApp App State Keys"
    }

    public let iv: Data
    public let cipherKey: Data
    public let macKey: Data
    public let refKey: Data

    public init(mediaKey: some DataProtocol, type: MediaType) {
        self.init(expanding: mediaKey, info: Data(type.rawValue.utf8))
    }

    /// For tests and new info strings: expand with any info.
    public init(expanding mediaKey: some DataProtocol, info: some DataProtocol) {
        let expanded = Symmetric.hkdfSHA256(inputKeyMaterial: mediaKey, info: info, outputByteCount: 112)
        iv = expanded.subdata(in: 0..<16)
        cipherKey = expanded.subdata(in: 16..<48)
        macKey = expanded.subdata(in: 48..<80)
        refKey = expanded.subdata(in: 80..<112)
    }

    public var description: String { "MediaKeys(redacted)" }
}
