import Foundation
import WAProto

/// The fields that point a media message at its encrypted blob. The generated
/// image, video, audio and document messages each have them but share no
/// protocol; this one lets the client and the simulator fill them once.
public protocol MediaMessageFields {
    var url: String { get set }
    var directPath: String { get set }
    var mimetype: String { get set }
    var mediaKey: Data { get set }
    var fileSha256: Data { get set }
    var fileEncSha256: Data { get set }
    var fileLength: UInt64 { get set }
    var mediaKeyTimestamp: Int64 { get set }
}

extension MediaMessageFields {
    /// Points the message at `media`, stored at `directPath` (`url` on the host).
    public mutating func setMedia(_ media: EncryptedMedia, url: String, directPath: String, mimetype: String,
                                  timestamp: Int64 = Int64(Date().timeIntervalSince1970)) {
        self.url = url
        self.directPath = directPath
        self.mimetype = mimetype
        mediaKey = media.mediaKey
        fileSha256 = media.fileSHA256
        fileEncSha256 = media.fileEncSHA256
        fileLength = media.fileLength
        mediaKeyTimestamp = timestamp
    }
}

extension WAE2E_ImageMessage: MediaMessageFields {}
extension WAE2E_VideoMessage: MediaMessageFields {}
extension WAE2E_AudioMessage: MediaMessageFields {}
extension WAE2E_DocumentMessage: MediaMessageFields {}
