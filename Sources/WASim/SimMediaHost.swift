import Foundation
import Hummingbird
import Logging
import NIOCore
import WACrypto

/// The blobs the simulated media host keeps, by direct path (bounded in
/// count and bytes: the oldest go first). Blobs are stored as uploaded
/// (encrypted); the host never sees a media key.
actor SimMediaStore {
    private var blobs: [String: Data] = [:]
    /// The mms type each blob was uploaded as (`image`, `md-msg-hist`, …) and its SHA-256 then
    /// (base64url): a download must name both, as the real host checks.
    private var kinds: [String: (kind: String, hash: String)] = [:]
    private var order: [String] = []
    private var bytes = 0
    let maxBlobs: Int
    let maxBytes: Int
    private(set) var uploads = 0

    private var failuresLeft: Int
    private(set) var downloadsRefused = 0

    init(maxBlobs: Int, maxBytes: Int, failingDownloads: Int = 0) {
        self.maxBlobs = maxBlobs
        self.maxBytes = maxBytes
        failuresLeft = max(0, failingDownloads)
    }

    /// True while the host is to fail downloads (`WASim.Configuration.failingMediaDownloads`).
    func takeDownloadFailure() -> Bool {
        guard failuresLeft > 0 else { return false }
        failuresLeft -= 1
        downloadsRefused += 1
        return true
    }

    /// Stores `blob` under a fresh direct path shaped like WhatsApp's
    /// (`/v/t62.7118-24/<id>.enc?ccb=11-4&oh=…&oe=…`); returns the path.
    func store(_ blob: Data, kind: String) -> String {
        let id = Symmetric.randomBytes(12).map { String(format: "%02x", $0) }.joined()
        let oh = Symmetric.randomBytes(8).map { String(format: "%02x", $0) }.joined()
        let oe = String(Int(Date().timeIntervalSince1970) + 30 * 86_400, radix: 16, uppercase: true)
        let path = "/v/t62.7118-24/\(kind)-\(id).enc"
        blobs[path] = blob
        kinds[path] = (kind, SimMediaHost.token(Symmetric.sha256(blob)))
        order.append(path)
        bytes += blob.count
        uploads += 1
        while order.count > maxBlobs || bytes > maxBytes, let oldest = order.first {
            order.removeFirst()
            bytes -= blobs.removeValue(forKey: oldest)?.count ?? 0
            kinds.removeValue(forKey: oldest)
        }
        return "\(path)?ccb=11-4&oh=\(oh)&oe=\(oe)"
    }

    /// The blob at a direct path (its query string ignored, as the real host checks it apart).
    func blob(at directPath: String) -> Data? { blobs[Self.pathOnly(directPath)] }

    /// The blob, the mms type it was uploaded as and its hash at upload.
    func entry(at directPath: String) -> (blob: Data, kind: String, hash: String)? {
        let path = Self.pathOnly(directPath)
        guard let blob = blobs[path], let meta = kinds[path] else { return nil }
        return (blob, meta.kind, meta.hash)
    }

    /// Flips one byte of a stored blob (a host or network that alters media). False if none is there.
    func corrupt(_ directPath: String, at offset: Int) -> Bool {
        let path = Self.pathOnly(directPath)
        guard var blob = blobs[path], !blob.isEmpty else { return false }
        let index = blob.startIndex + min(max(offset, 0), blob.count - 1)
        blob[index] ^= 0x01
        blobs[path] = blob
        return true
    }

    static func pathOnly(_ directPath: String) -> String {
        String(directPath.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
    }
}

/// The simulator's media host: a loopback HTTP server (Hummingbird) taking
/// uploads the way WhatsApp's media hosts do and serving downloads by direct path.
///
///     POST /mms/{image|video|audio|document|ptt|sticker}/{token}?auth=…&token=…   body: encrypted blob
///          → 200 {"url": "http://127.0.0.1:port<direct_path>", "direct_path": "/v/t62.7118-24/…"}
///          401 wrong or missing auth; 400 token ≠ base64url(SHA-256(body)) or unknown type;
///          413 body over the bound
///     GET  /v/…?…&hash=<base64url fileEncSha256>&mms-type=<type>&__wa-mms=  → the blob as uploaded;
///          404 if none; 400 when hash or mms-type is missing or names another blob or type
///          (the query whatsmeow's download.go builds)
enum SimMediaHost {
    static let kinds: Set<String> = ["image", "video", "audio", "document", "ptt", "sticker", "gif", "md-msg-hist", "md-app-state"]

    struct UploadAnswer: ResponseEncodable {
        let url: String
        let direct_path: String
    }

    static func router(store: SimMediaStore, auth: String, maxBlobBytes: Int) -> Router<BasicRequestContext> {
        let router = Router()
        router.post("/mms/:kind/:token") { request, context -> UploadAnswer in
            let kind = try context.parameters.require("kind")
            guard kinds.contains(kind) else { throw HTTPError(.badRequest, message: "unknown media type") }
            guard request.uri.queryParameters.get("auth") == auth else { throw HTTPError(.unauthorized, message: "bad auth") }
            let pathToken = try context.parameters.require("token").removingPercentEncoding
            let queryToken = request.uri.queryParameters.get("token")
            let body: ByteBuffer
            do { body = try await request.body.collect(upTo: maxBlobBytes) } catch {
                throw HTTPError(.contentTooLarge, message: "blob over \(maxBlobBytes) bytes")
            }
            let blob = Data(body.readableBytesView)
            let expected = token(Symmetric.sha256(blob))
            // A blob is at least one AES block plus the 10-byte MAC.
            guard pathToken == expected, queryToken == nil || queryToken == expected, blob.count >= 26 else {
                throw HTTPError(.badRequest, message: "token does not match the body's SHA-256")
            }
            let directPath = await store.store(blob, kind: kind)
            return UploadAnswer(url: "http://\(request.head.authority ?? "127.0.0.1")\(directPath)", direct_path: directPath)
        }
        router.get("/v/**") { request, _ -> Response in
            if await store.takeDownloadFailure() { throw HTTPError(.serviceUnavailable) }
            guard let entry = await store.entry(at: request.uri.path) else { throw HTTPError(.notFound) }
            let (blob, kind) = (entry.blob, entry.kind)
            let query = parameters(request.uri.query ?? "")
            // Checked against the hash the blob had at upload (a host that altered it since still serves it).
            guard let hash = query["hash"], hash == entry.hash else {
                throw HTTPError(.badRequest, message: "hash missing or not the blob's SHA-256")
            }
            guard let type = query["mms-type"], type == kind || (kind == "image" && type == "sticker") else {
                throw HTTPError(.badRequest, message: "mms-type missing or not the blob's type")
            }
            return Response(
                status: .ok, headers: [.contentType: "application/octet-stream"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: blob)))
        }
        return router
    }

    /// base64url with padding, as whatsmeow's base64.URLEncoding.
    static func token(_ hash: Data) -> String {
        hash.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
    }

    /// A raw query as name → value, each split at its first `=` and percent-decoded (a base64
    /// value keeps its `=` padding whether or not the client encoded it).
    static func parameters(_ query: String) -> [String: String] {
        var out: [String: String] = [:]
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = parts.first.flatMap({ String($0).removingPercentEncoding }) else { continue }
            let value = parts.count > 1 ? String(parts[1]).removingPercentEncoding : ""
            if let value, out[name] == nil { out[name] = value }
        }
        return out
    }
}
