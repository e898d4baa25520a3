import Foundation
import WACrypto
import WAProto

/// A file encrypted the way WhatsApp's media hosts expect it: a fresh 32-byte
/// media key, HKDF-expanded with the kind's info string (`MediaKeys`),
/// AES-256-CBC + 10-byte HMAC (`MediaCipher`), and the two hashes a message
/// carries (`fileSha256` of the plaintext, `fileEncSha256` of the upload).
public struct EncryptedMedia: Sendable {
    public let kind: MessageContent.MediaInfo.Kind
    public let mediaKey: Data
    /// ciphertext ‖ MAC: the bytes that are uploaded.
    public let blob: Data
    public let fileSHA256: Data
    public let fileEncSHA256: Data
    public let fileLength: UInt64

    /// Encrypts `plaintext` with `mediaKey` (random unless given, for known-answer tests).
    public init(encrypting plaintext: Data, kind: MessageContent.MediaInfo.Kind, mediaKey: Data? = nil) throws {
        let key = mediaKey ?? Symmetric.randomBytes(32)
        let blob: Data
        do { blob = try MediaCipher.encrypt(plaintext, keys: MediaKeys(mediaKey: key, type: kind.keyType)) } catch {
            throw WAClientError(.mediaInfoInvalid, "media encryption failed", underlying: (error as? WACryptoError)?.code)
        }
        self.kind = kind
        self.mediaKey = key
        self.blob = blob
        fileSHA256 = Symmetric.sha256(plaintext)
        fileEncSHA256 = Symmetric.sha256(blob)
        fileLength = UInt64(plaintext.count)
    }

    /// The upload token WhatsApp's hosts check: base64url (padded) of `fileEncSha256`.
    public var uploadToken: String { MediaCrypto.token(fileEncSHA256) }
}

/// Media decryption with every check WhatsApp's clients make, in order:
/// `fileEncSha256` over the downloaded blob, the truncated HMAC, then
/// `fileSha256` over the plaintext. Each failure has its own typed code.
public enum MediaCrypto {
    public static func decrypt(_ blob: Data, info: MessageContent.MediaInfo) throws -> Data {
        try decrypt(blob, mediaKey: info.mediaKey, fileSHA256: info.fileSHA256, fileEncSHA256: info.fileEncSHA256,
                    type: info.kind.keyType)
    }

    /// The same checks for media that is not a message's (a history-sync blob: `.history` keys).
    public static func decrypt(_ blob: Data, mediaKey: Data, fileSHA256: Data, fileEncSHA256: Data,
                               type: MediaKeys.MediaType) throws -> Data {
        guard mediaKey.count == 32, fileSHA256.count == 32, fileEncSHA256.count == 32 else {
            throw WAClientError(.mediaInfoInvalid, "media key or hashes missing or of the wrong size")
        }
        guard Symmetric.sha256(blob) == fileEncSHA256 else {
            throw WAClientError(.mediaHashMismatch, "downloaded blob does not match fileEncSha256")
        }
        let plaintext: Data
        do { plaintext = try MediaCipher.decrypt(blob, keys: MediaKeys(mediaKey: mediaKey, type: type)) } catch {
            let code = (error as? WACryptoError)?.code
            throw WAClientError(code == .badMAC ? .mediaBadMAC : .mediaHashMismatch, "media blob does not decrypt", underlying: code)
        }
        guard Symmetric.sha256(plaintext) == fileSHA256 else {
            throw WAClientError(.mediaHashMismatch, "decrypted file does not match fileSha256")
        }
        return plaintext
    }

    /// base64url with padding, as whatsmeow and the web client send it.
    static func token(_ hash: Data) -> String {
        hash.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
    }
}

extension MessageContent.MediaInfo.Kind {
    /// The HKDF info string of the kind (a sticker uses the image keys).
    public var keyType: MediaKeys.MediaType {
        switch self {
        case .image, .sticker: .image
        case .video: .video
        case .audio: .audio
        case .document: .document
        }
    }

    /// The path segment of the upload URL (`/mms/<type>/…`).
    public var mmsType: String {
        switch self {
        case .image, .sticker: "image"
        case .video: "video"
        case .audio: "audio"
        case .document: "document"
        }
    }
}

extension MessageContent.MediaInfo {
    /// The media fields of a decrypted message (image, video, audio, document, sticker), or nil.
    public init?(message: WAE2E_Message) {
        guard case .media(let info) = MessageContent(message) else { return nil }
        self = info
    }
}

extension MessageContent.MediaInfo {
    /// Media fields as a message carries them (for senders, simulators and tests).
    /// (Labels ordered apart from the memberwise initializer's, which stays internal.)
    public init(
        kind: Kind, mimetype: String, fileLength: UInt64, directPath: String, url: String,
        mediaKey: Data, fileSHA256: Data, fileEncSHA256: Data, caption: String? = nil, fileName: String? = nil
    ) {
        self.kind = kind
        self.mimetype = mimetype
        self.caption = caption
        self.fileName = fileName
        self.fileLength = fileLength
        self.directPath = directPath
        self.url = url
        self.mediaKey = mediaKey
        self.fileSHA256 = fileSHA256
        self.fileEncSHA256 = fileEncSHA256
        context = nil
    }
}
