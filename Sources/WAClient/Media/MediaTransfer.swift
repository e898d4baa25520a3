import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import WABinary
import WACrypto
import WAProto

/// What a media host answered to an upload.
public struct UploadedMedia: Sendable, Equatable {
    public var url: String
    public var directPath: String
}

/// Media for one `WAClient`: the `<media_conn>` auth and hosts (cached for
/// their ttl), uploads, bounded downloads, and sending image and document
/// messages. The HTTP side follows what WhatsApp's media hosts expect:
/// `POST https://<host>/mms/<type>/<token>?auth=<auth>&token=<token>` with the
/// encrypted blob as the body (token: base64url of `fileEncSha256`), answered
/// with JSON `url` and `direct_path`; downloads are `GET https://<host><direct_path>`.
public actor MediaTransfer {
    public struct Configuration: Sendable {
        /// Largest file (plaintext) this client uploads.
        public var maxUploadBytes = 16 << 20
        /// Largest file (plaintext) this client downloads; bigger blobs are refused unread.
        public var maxDownloadBytes = 64 << 20
        /// `https` for WhatsApp; the simulator's loopback host speaks `http`.
        public var scheme = "https"
        /// Bound of one HTTP exchange.
        public var timeout: Duration = .seconds(60)
        /// Tries of one download per host when the host fails transiently (5xx, unreachable,
        /// timeout); a 4xx or a bad blob is not tried again.
        public var downloadAttempts = 3
        /// Pause before the second try, doubled for each further one.
        public var retryPause: Duration = .milliseconds(250)
        public init() {}
    }

    public nonisolated let configuration: Configuration
    private let client: WAClient
    private let http: HTTPClient
    private var cached: MediaConnection?

    public init(client: WAClient, configuration: Configuration = Configuration(), httpClient: HTTPClient = .shared) {
        self.client = client
        self.configuration = configuration
        http = httpClient
    }

    /// The media auth and hosts, asked from the server when none is cached or it expired.
    public func connection(refresh: Bool = false) async throws -> MediaConnection {
        if !refresh, let cached, cached.isFresh() { return cached }
        let answer = try await client.sendIQ(MediaConnection.query(id: MessageID.random()))
        let connection = try MediaConnection(parsing: answer)
        cached = connection
        return connection
    }

    /// Encrypts and uploads `data` (at most `maxUploadBytes`).
    public func upload(_ data: Data, kind: MessageContent.MediaInfo.Kind) async throws -> (EncryptedMedia, UploadedMedia) {
        guard data.count <= configuration.maxUploadBytes else {
            throw WAClientError(.mediaTooLarge, "upload of \(data.count) bytes, bound \(configuration.maxUploadBytes)")
        }
        let media = try EncryptedMedia(encrypting: data, kind: kind)
        let conn = try await connection()
        let token = media.uploadToken
        var lastError = WAClientError(.mediaTransferFailed, "no media host")
        for host in conn.hosts {
            let url = "\(configuration.scheme)://\(host)/mms/\(kind.mmsType)/\(Self.percentEncoded(token))"
                + "?auth=\(Self.percentEncoded(conn.auth))&token=\(Self.percentEncoded(token))"
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/octet-stream")
            request.headers.add(name: "Origin", value: "https://web.whatsapp.com")
            request.headers.add(name: "Referer", value: "https://web.whatsapp.com/")
            request.body = .bytes(ByteBuffer(bytes: media.blob))
            do {
                let body = try await exchange(request, limit: 64 << 10)
                guard let decoded = try? JSONDecoder().decode(UploadAnswer.self, from: body), !decoded.direct_path.isEmpty else {
                    throw WAClientError(.mediaTransferFailed, "upload answer without direct_path")
                }
                return (media, UploadedMedia(url: decoded.url ?? "", directPath: decoded.direct_path))
            } catch let error as WAClientError {
                lastError = error  // the next host may take it
            } catch let failure as TransientFailure {
                lastError = failure.error
            }
        }
        throw lastError
    }

    /// Downloads and decrypts the media of a received message, checking
    /// `fileEncSha256`, the MAC and `fileSha256` (`MediaCrypto.decrypt`).
    public func download(_ info: MessageContent.MediaInfo) async throws -> Data {
        try await download(
            directPath: info.directPath, url: info.url, fileLength: info.fileLength, fileEncSHA256: info.fileEncSHA256,
            mmsType: info.kind.mmsType,
            limit: configuration.maxDownloadBytes
        ) { blob in try MediaCrypto.decrypt(blob, info: info) }
    }

    /// Downloads and decrypts the blob of a history-sync notification (mms type `md-msg-hist`,
    /// "WhatsApp History Keys"; whatsmeow download.go), at most `limit` bytes of (deflated) plaintext.
    public func downloadHistory(_ notification: WAE2E_HistorySyncNotification, limit: Int) async throws -> Data {
        guard notification.hasDirectPath, notification.directPath.hasPrefix("/") else {
            throw WAClientError(.mediaInfoInvalid, "history sync notification without a direct path")
        }
        return try await download(
            directPath: notification.directPath, url: "", fileLength: notification.fileLength,
            fileEncSHA256: notification.fileEncSha256, mmsType: Self.historyMMSType,
            limit: min(limit, configuration.maxDownloadBytes)
        ) { blob in
            try MediaCrypto.decrypt(blob, mediaKey: notification.mediaKey, fileSHA256: notification.fileSha256,
                                    fileEncSHA256: notification.fileEncSha256, type: .history)
        }
    }

    /// Downloads and decrypts an app-state external blob (a snapshot or a patch's mutations: mms type
    /// `md-app-state`, "WhatsApp App State Keys"; whatsmeow download.go), at most `limit` bytes of plaintext.
    public func downloadAppState(_ reference: WAServerSync_ExternalBlobReference, limit: Int) async throws -> Data {
        guard reference.hasDirectPath, reference.directPath.hasPrefix("/") else {
            throw WAClientError(.mediaInfoInvalid, "app-state blob reference without a direct path")
        }
        return try await download(
            directPath: reference.directPath, url: "", fileLength: reference.fileSizeBytes,
            fileEncSHA256: reference.fileEncSha256, mmsType: Self.appStateMMSType,
            limit: min(limit, configuration.maxDownloadBytes)
        ) { blob in
            try MediaCrypto.decrypt(blob, mediaKey: reference.mediaKey, fileSHA256: reference.fileSha256,
                                    fileEncSHA256: reference.fileEncSha256, type: .appState)
        }
    }

    /// The mms type of app-state blobs.
    public static let appStateMMSType = "md-app-state"

    /// The mms type of history-sync blobs.
    public static let historyMMSType = "md-msg-hist"

    private func download(
        directPath: String, url: String, fileLength: UInt64, fileEncSHA256: Data, mmsType: String, limit plainLimit: Int,
        decrypt: (Data) throws -> Data
    ) async throws -> Data {
        guard fileLength <= UInt64(plainLimit) else {
            throw WAClientError(.mediaTooLarge, "media of \(fileLength) bytes, bound \(plainLimit)")
        }
        var urls: [String] = []
        if directPath.hasPrefix("/") {
            let query = Self.downloadQuery(directPath: directPath, fileEncSHA256: fileEncSHA256, mmsType: mmsType)
            urls = try await connection().hosts.map { "\(configuration.scheme)://\($0)\(directPath)\(query)" }
        }
        if urls.isEmpty, !url.isEmpty { urls = [url] }
        guard !urls.isEmpty else { throw WAClientError(.mediaInfoInvalid, "media message without direct path or url") }
        // CBC pads to the next block; the MAC adds 10 bytes.
        let limit = plainLimit + 16 + MediaCipher.macLength
        var lastError = WAClientError(.mediaTransferFailed, "no media host")
        for url in urls {
            var request = HTTPClientRequest(url: url)
            request.headers.add(name: "Origin", value: "https://web.whatsapp.com")
            var pause = configuration.retryPause
            for attempt in 1...max(1, configuration.downloadAttempts) {
                do {
                    return try decrypt(try await exchange(request, limit: limit))
                } catch let failure as TransientFailure {
                    lastError = failure.error
                    guard attempt < configuration.downloadAttempts else { break }
                    try await Task.sleep(for: pause)
                    pause *= 2
                } catch let error as WAClientError where error.code == .mediaTransferFailed {
                    lastError = error
                    break
                }
            }
        }
        throw lastError
    }

    /// Uploads `data` and sends it as an image message (`sendMessage`: usync, Signal, server ack).
    public func sendImage(to chat: JID, data: Data, mimetype: String = "image/jpeg", caption: String? = nil,
                          width: UInt32? = nil, height: UInt32? = nil) async throws -> SentMessage {
        let (media, uploaded) = try await upload(data, kind: .image)
        var image = WAE2E_ImageMessage()
        image.setMedia(media, url: uploaded.url, directPath: uploaded.directPath, mimetype: mimetype)
        if let caption { image.caption = caption }
        if let width { image.width = width }
        if let height { image.height = height }
        var message = WAE2E_Message()
        message.imageMessage = image
        return try await client.sendMessage(to: chat, message)
    }

    /// Uploads `data` and sends it as a document message.
    public func sendDocument(to chat: JID, data: Data, mimetype: String, fileName: String, caption: String? = nil) async throws -> SentMessage {
        let (media, uploaded) = try await upload(data, kind: .document)
        var document = WAE2E_DocumentMessage()
        document.setMedia(media, url: uploaded.url, directPath: uploaded.directPath, mimetype: mimetype)
        document.fileName = fileName
        if let caption { document.caption = caption }
        var message = WAE2E_Message()
        message.documentMessage = document
        return try await client.sendMessage(to: chat, message)
    }

    private struct UploadAnswer: Decodable {
        let url: String?
        let direct_path: String
    }

    /// A failure worth another try (5xx, unreachable, timeout); callers that do not retry see it as
    /// the `WAClientError` inside only through `download`, which unwraps it.
    private struct TransientFailure: Error { let error: WAClientError }

    /// One request; a non-2xx status, a transport failure or a body over `limit` is a typed error.
    private func exchange(_ request: HTTPClientRequest, limit: Int) async throws -> Data {
        let response: HTTPClientResponse
        do {
            response = try await http.execute(request, timeout: .nanoseconds(Int64(configuration.timeout.components.seconds) * 1_000_000_000))
        } catch {
            throw TransientFailure(error: WAClientError(.mediaTransferFailed, "media host unreachable: \(type(of: error))"))
        }
        guard (200..<300).contains(response.status.code) else {
            let error = WAClientError(.mediaTransferFailed, "media host answered \(response.status.code)")
            if response.status.code >= 500 { throw TransientFailure(error: error) }
            throw error
        }
        if let length = response.headers.first(name: "Content-Length").flatMap(Int.init), length > limit {
            throw WAClientError(.mediaTooLarge, "media host sends \(length) bytes, bound \(limit)")
        }
        do {
            let body = try await response.body.collect(upTo: limit)
            return Data(body.readableBytesView)
        } catch is NIOTooManyBytesError {
            throw WAClientError(.mediaTooLarge, "media body over \(limit) bytes")
        } catch {
            throw WAClientError(.mediaTransferFailed, "media body unreadable: \(type(of: error))")
        }
    }

    /// What whatsmeow's download.go appends to a direct path: `&hash=<base64url fileEncSha256>&mms-type=<type>&__wa-mms=`
    /// (`?` instead of the first `&` when the path has no query). The host checks both against the blob.
    public static func downloadQuery(directPath: String, fileEncSHA256: Data, mmsType: String) -> String {
        let separator = directPath.contains("?") ? "&" : "?"
        return "\(separator)hash=\(percentEncoded(MediaCrypto.token(fileEncSHA256)))&mms-type=\(percentEncoded(mmsType))&__wa-mms="
    }

    private static func percentEncoded(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}
