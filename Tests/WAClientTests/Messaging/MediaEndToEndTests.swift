import AsyncHTTPClient
import Foundation
import NIOCore
import WABinary
import WAClient
import WACrypto
import WASim
import XCTest

/// Media end to end: our client and simulated phones exchange encrypted media
/// through the simulator's loopback media host (`media_conn` → upload → message → download).
final class MediaEndToEndTests: XCTestCase {
    static func bytes(_ count: Int) -> Data { Symmetric.randomBytes(count) }

    func transfer(_ client: WAClient, _ tweak: (inout MediaTransfer.Configuration) -> Void = { _ in }) -> MediaTransfer {
        var configuration = MediaTransfer.Configuration()
        configuration.scheme = "http"  // the simulator's media host is plain HTTP on loopback
        tweak(&configuration)
        return MediaTransfer(client: client, configuration: configuration)
    }

    nonisolated static func media(_ message: ReceivedMessage?) -> MessageContent.MediaInfo? {
        guard case .media(let info)? = message?.content else { return nil }
        return info
    }

    func testPhoneMediaReachesClientAndDecryptsWithEveryCheck() async throws {
        let harness = try await SimHarness.start()
        let sim = harness.sim
        let client = await harness.messagingClient(store: InMemoryDeviceStore())
        let log = EventLog.watching(client)
        let me = "15550300001", peer = "15550300002"
        _ = try await within(20) { try await harness.qrLogin(client, phone: me) }
        await sim.createPhone(number: peer)
        let media = transfer(client)

        // Image (bigger than one read buffer) and document, each decrypted to the same bytes.
        let image = Self.bytes(300_000 + 7)
        let imageID = try await sim.sendMedia(from: peer, to: user(me), data: image, kind: .image, mimetype: "image/jpeg", caption: "pic")
        let document = Self.bytes(5_000)
        let documentID = try await sim.sendMedia(
            from: peer, to: user(me), data: document, kind: .document, mimetype: "application/pdf", fileName: "a.pdf")
        try await eventually(10, "both media messages received") {
            let ids = await log.received.map(\.id)
            return ids.contains(imageID) && ids.contains(documentID)
        }
        let receivedImage = await log.received.first { $0.id == imageID }
        let imageInfo = try XCTUnwrap(Self.media(receivedImage))
        XCTAssertEqual(imageInfo.kind, .image)
        XCTAssertEqual(imageInfo.caption, "pic")
        XCTAssertEqual(imageInfo.fileLength, UInt64(image.count))
        let gotImage = try await within(20) { try await media.download(imageInfo) }
        XCTAssertEqual(gotImage, image)
        let receivedDocument = await log.received.first { $0.id == documentID }
        let documentInfo = try XCTUnwrap(Self.media(receivedDocument))
        XCTAssertEqual(documentInfo.kind, .document)
        XCTAssertEqual(documentInfo.fileName, "a.pdf")
        let gotDocument = try await within(20) { try await media.download(documentInfo) }
        XCTAssertEqual(gotDocument, document)

        // Over the client's download bound: refused before any byte is fetched.
        let small = transfer(client) { $0.maxDownloadBytes = 100_000 }
        do {
            _ = try await small.download(imageInfo)
            XCTFail("a file over the download bound must be refused")
        } catch let error as WAClientError {
            XCTAssertEqual(error.code, .mediaTooLarge)
        }
        // A media host that lies about the size: the body bound still holds.
        var lying = imageInfo
        lying.fileLength = 10
        do {
            _ = try await small.download(lying)
            XCTFail("a body over the bound must be refused")
        } catch let error as WAClientError {
            XCTAssertEqual(error.code, .mediaTooLarge)
        }

        // The host alters one byte of the ciphertext: the fileEncSha256 check refuses it.
        let altered = await sim.corruptMedia(directPath: imageInfo.directPath, at: 1_000)
        XCTAssertTrue(altered)
        do {
            _ = try await media.download(imageInfo)
            XCTFail("tampered media must not decrypt")
        } catch let error as WAClientError {
            XCTAssertEqual(error.code, .mediaHashMismatch)
        }
        // A direct path the host does not know: a transfer error, not a crash or a hang.
        var missing = documentInfo
        missing.directPath = "/v/t62.7118-24/none.enc"
        do {
            _ = try await media.download(missing)
            XCTFail("an unknown direct path must fail")
        } catch let error as WAClientError {
            XCTAssertEqual(error.code, .mediaTransferFailed)
        }
        await harness.shutdown(client)
    }

    func testClientImageReachesPhoneAndOwnPhone() async throws {
        let harness = try await SimHarness.start()
        let sim = harness.sim
        let client = await harness.messagingClient(store: InMemoryDeviceStore())
        let me = "15550300011", peer = "15550300012"
        _ = try await within(20) { try await harness.qrLogin(client, phone: me) }
        await sim.createPhone(number: peer)
        let media = transfer(client) { $0.maxUploadBytes = 256_000 }
        // The phone's history-sync blob from the link is on the host already.
        let uploadsBefore = await sim.mediaUploads

        let image = Self.bytes(200_000)
        let sent = try await within(20) { try await media.sendImage(to: user(peer), data: image, mimetype: "image/png", caption: "from client") }
        let uploadsAfterImage = await sim.mediaUploads
        XCTAssertEqual(uploadsAfterImage, uploadsBefore + 1)
        try await eventually(10, "peer phone got the image") {
            await sim.receivedMessages(phone: peer).contains { $0.id == sent.id && $0.kind == "image" && $0.text == "from client" }
        }
        let atPeer = try await sim.downloadMedia(phone: peer, id: sent.id)
        XCTAssertEqual(atPeer, image)
        // Our own phone got the DeviceSentMessage copy and can open the same upload.
        try await eventually(10, "own phone got the copy") {
            await sim.receivedMessages(phone: me).contains { $0.id == sent.id && $0.isFromMe }
        }
        let atOwnPhone = try await sim.downloadMedia(phone: me, id: sent.id)
        XCTAssertEqual(atOwnPhone, image)

        let document = Self.bytes(1_234)
        let doc = try await media.sendDocument(to: user(peer), data: document, mimetype: "text/plain", fileName: "notes.txt")
        try await eventually(10, "peer phone got the document") {
            await sim.receivedMessages(phone: peer).contains { $0.id == doc.id && $0.kind == "document" }
        }
        let documentAtPeer = try await sim.downloadMedia(phone: peer, id: doc.id)
        XCTAssertEqual(documentAtPeer, document)

        // Over the upload bound: refused before encrypting or uploading anything.
        do {
            _ = try await media.sendImage(to: user(peer), data: Self.bytes(256_001))
            XCTFail("an image over the upload bound must be refused")
        } catch let error as WAClientError {
            XCTAssertEqual(error.code, .mediaTooLarge)
        }
        let uploadsAtEnd = await sim.mediaUploads
        XCTAssertEqual(uploadsAtEnd, uploadsBefore + 2, "the refused image was never uploaded")
        await harness.shutdown(client)
    }

    /// The media host refuses what WhatsApp's hosts refuse: a wrong auth token, a token that is
    /// not the body's hash, an unknown media type; and serves nothing for unknown paths.
    func testMediaHostChecksAuthAndHash() async throws {
        let harness = try await SimHarness.start()
        let sim = harness.sim
        let client = await harness.messagingClient(store: InMemoryDeviceStore())
        _ = try await within(20) { try await harness.qrLogin(client, phone: "15550300021") }
        let conn = try await transfer(client).connection()
        let mediaPort = await sim.mediaPort
        XCTAssertEqual(conn.hosts, ["127.0.0.1:\(try XCTUnwrap(mediaPort))"])
        let encrypted = try EncryptedMedia(encrypting: Self.bytes(100), kind: .image)
        let token = encrypted.uploadToken.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        let auth = conn.auth.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        let host = conn.hosts[0]
        let uploadsBefore = await sim.mediaUploads  // the phone's history-sync blob from the link

        func post(_ path: String, _ body: Data) async throws -> UInt {
            var request = HTTPClientRequest(url: "http://\(host)\(path)")
            request.method = .POST
            request.body = .bytes(ByteBuffer(bytes: body))
            return try await HTTPClient.shared.execute(request, timeout: .seconds(10)).status.code
        }
        let wrongAuth = try await post("/mms/image/\(token)?auth=nope&token=\(token)", encrypted.blob)
        XCTAssertEqual(wrongAuth, 401)
        var altered = encrypted.blob
        altered[altered.startIndex] ^= 1
        let wrongHash = try await post("/mms/image/\(token)?auth=\(auth)&token=\(token)", altered)
        XCTAssertEqual(wrongHash, 400)
        let wrongType = try await post("/mms/nonsense/\(token)?auth=\(auth)&token=\(token)", encrypted.blob)
        XCTAssertEqual(wrongType, 400)
        let uploadsRefused = await sim.mediaUploads
        XCTAssertEqual(uploadsRefused, uploadsBefore)
        var upload = HTTPClientRequest(url: "http://\(host)/mms/image/\(token)?auth=\(auth)&token=\(token)")
        upload.method = .POST
        upload.body = .bytes(ByteBuffer(bytes: encrypted.blob))
        let good = try await HTTPClient.shared.execute(upload, timeout: .seconds(10))
        XCTAssertEqual(good.status.code, 200)
        let body = try await good.body.collect(upTo: 1 << 16)
        let answer = try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any]
        let directPath = try XCTUnwrap(answer?["direct_path"] as? String)
        let uploadsAccepted = await sim.mediaUploads
        XCTAssertEqual(uploadsAccepted, uploadsBefore + 1)

        // Downloads name the blob's hash and mms type, as whatsmeow's download.go builds the URL.
        func get(_ query: String) async throws -> UInt {
            try await HTTPClient.shared.execute(HTTPClientRequest(url: "http://\(host)\(directPath)\(query)"), timeout: .seconds(10)).status.code
        }
        let hash = encrypted.uploadToken
        let noQuery = try await get("")
        XCTAssertEqual(noQuery, 400, "no hash, no mms-type")
        let otherHash = try await get("&hash=\(Symmetric.sha256(Data([1])).base64EncodedString())&mms-type=image&__wa-mms=")
        XCTAssertEqual(otherHash, 400)
        let otherType = try await get("&hash=\(hash)&mms-type=video&__wa-mms=")
        XCTAssertEqual(otherType, 400)
        let rawHash = try await get("&hash=\(hash)&mms-type=image&__wa-mms=")
        XCTAssertEqual(rawHash, 200, "whatsmeow's form: the hash unencoded")
        let built = try await get(MediaTransfer.downloadQuery(directPath: directPath, fileEncSHA256: encrypted.fileEncSHA256, mmsType: "image"))
        XCTAssertEqual(built, 200, "the client's form")
        let unknown = try await HTTPClient.shared.execute(HTTPClientRequest(url: "http://\(host)/v/t62.7118-24/x.enc"), timeout: .seconds(10))
        XCTAssertEqual(unknown.status.code, 404)
        await harness.shutdown(client)
    }
}

/// The decryption checks alone, without a host.
final class MediaCryptoTests: XCTestCase {
    func info(_ media: EncryptedMedia, blob: Data? = nil) -> MessageContent.MediaInfo {
        MessageContent.MediaInfo(
            kind: media.kind, mimetype: "image/jpeg", fileLength: media.fileLength, directPath: "/v/x", url: "",
            mediaKey: media.mediaKey, fileSHA256: media.fileSHA256,
            fileEncSHA256: blob.map { Symmetric.sha256($0) } ?? media.fileEncSHA256)
    }

    func testRoundTripAndEachCheck() throws {
        let plain = Symmetric.randomBytes(1_000)
        let media = try EncryptedMedia(encrypting: plain, kind: .image)
        XCTAssertEqual(media.blob.count, 1_008 + 10, "PKCS#7 to 1008, then the 10-byte MAC")
        XCTAssertEqual(try MediaCrypto.decrypt(media.blob, info: info(media)), plain)
        // The same key expanded for another kind does not open it (per-type info string).
        var asDocument = info(media)
        asDocument.kind = .document
        XCTAssertThrowsError(try MediaCrypto.decrypt(media.blob, info: asDocument)) {
            XCTAssertEqual(($0 as? WAClientError)?.code, .mediaBadMAC)
        }
        // Altered ciphertext with a matching fileEncSha256 (a forged message): the MAC refuses it.
        var altered = media.blob
        altered[altered.startIndex + 20] ^= 0x80
        XCTAssertThrowsError(try MediaCrypto.decrypt(altered, info: info(media, blob: altered))) {
            XCTAssertEqual(($0 as? WAClientError)?.code, .mediaBadMAC)
            XCTAssertEqual(($0 as? WAClientError)?.underlying, .badMAC)
        }
        // Altered ciphertext against the message's hash: refused before decrypting.
        XCTAssertThrowsError(try MediaCrypto.decrypt(altered, info: info(media))) {
            XCTAssertEqual(($0 as? WAClientError)?.code, .mediaHashMismatch)
        }
        // A wrong fileSha256: the plaintext check refuses it.
        var wrongPlainHash = info(media)
        wrongPlainHash.fileSHA256 = Symmetric.sha256(Data("other".utf8))
        XCTAssertThrowsError(try MediaCrypto.decrypt(media.blob, info: wrongPlainHash)) {
            XCTAssertEqual(($0 as? WAClientError)?.code, .mediaHashMismatch)
        }
        // No key: refused as invalid media info.
        var noKey = info(media)
        noKey.mediaKey = Data()
        XCTAssertThrowsError(try MediaCrypto.decrypt(media.blob, info: noKey)) {
            XCTAssertEqual(($0 as? WAClientError)?.code, .mediaInfoInvalid)
        }
        XCTAssertEqual(media.uploadToken.count, 44)
        XCTAssertFalse(media.uploadToken.contains("+") || media.uploadToken.contains("/"))
    }
}
