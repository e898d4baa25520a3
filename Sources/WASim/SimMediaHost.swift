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
    private var order: [String] = []
    private var bytes = 0
    let maxBlobs: Int
    let maxBytes: Int
    private(set) var uploads = 0

    init(maxBlobs: Int, maxBytes: Int) {
        self.maxBlobs = maxBlobs
        self.maxBytes = maxBytes
    }

    /// Stores `blob` under a fresh direct path shaped like WhatsApp's
    /// (`/v/t62.7118-24/<id>.enc?ccb=11-4&oh=…&oe=…`); returns the path.
    func store(_ blob: Data, kind: String) -> String {
        let id = Symmetric.randomBytes(12).map { String(format: "%02x", $0) }.joined()
        let oh = Symmetric.randomBytes(8).map { String(format: "%02x", $0) }.joined()
        let oe = String(Int(Date().timeIntervalSince1970) + 30 * 86_400, radix: 16, uppercase: true)
        let path = "/v/t62.7118-24/\(kind)-\(id).enc"
        blobs[path] = blob
        order.append(path)
        bytes += blob.count
        uploads += 1
        while order.count > maxBlobs || bytes > maxBytes, let oldest = order.first {
            order.removeFirst()
            bytes -= blobs.removeValue(forKey: oldest)?.count ?? 0
        }
        return "\(path)?ccb=11-4&oh=\(oh)&oe=\(oe)"
    }

    /// The blob at a direct path (its query string ignored, as the real host checks it apart).
    func blob(at directPath: String) -> Data? { blobs[Self.pathOnly(directPath)] }

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
///     GET  /v/…  → the blob as uploaded; 404 if none
enum SimMediaHost {
    static let kinds: Set<String> = ["image", "video", "audio", "document", "ptt", "sticker", "gif"]

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
            let expected = Symmetric.sha256(blob).base64EncodedString()
                .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            // A blob is at least one AES block plus the 10-byte MAC.
            guard pathToken == expected, queryToken == nil || queryToken == expected, blob.count >= 26 else {
                throw HTTPError(.badRequest, message: "token does not match the body's SHA-256")
            }
            let directPath = await store.store(blob, kind: kind)
            return UploadAnswer(url: "http://\(request.head.authority ?? "127.0.0.1")\(directPath)", direct_path: directPath)
        }
        router.get("/v/**") { request, _ -> Response in
            guard let blob = await store.blob(at: request.uri.path) else { throw HTTPError(.notFound) }
            return Response(
                status: .ok, headers: [.contentType: "application/octet-stream"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: blob)))
        }
        return router
    }
}
