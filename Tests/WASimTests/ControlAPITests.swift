import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import NIOCore
import WABinary
import WAClient
import WAProto
import WASim
import XCTest

/// The loopback HTTP control API drives a full QR login, a fault and an unlink.
final class ControlAPITests: XCTestCase {
    private func request(_ method: String, _ url: URL, json: [String: Any]? = nil) async throws -> (Int, [String: Any]) {
        var request = URLRequest(url: url)
        request.httpMethod = method
        if let json {
            request.httpBody = try JSONSerialization.data(withJSONObject: json)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let (data, response) = try await URLSession.shared.data(for: request)
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        let body = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
        return (status, body)
    }

    /// A started simulator and its control API on a free loopback port.
    private func startControlAPI() async throws -> (WASim, Task<Void, any Error>, URL) {
        let sim = try WASim()
        try await sim.start()
        let (portStream, portSink) = AsyncStream<Int>.makeStream()
        let app = ControlAPI.application(for: sim, port: 0) { channel in
            portSink.yield(channel.localAddress?.port ?? 0)
            portSink.finish()
        }
        let server = Task { try await app.run() }
        var port = 0
        for await p in portStream { port = p }
        XCTAssertGreaterThan(port, 0)
        return (sim, server, URL(string: "http://127.0.0.1:\(port)")!)
    }

    func testControlAPIDrivesLoginFaultAndUnlink() async throws {
        let (sim, server, base) = try await startControlAPI()

        let (infoStatus, info) = try await request("GET", base.appendingPathComponent("info"))
        XCTAssertEqual(infoStatus, 200)
        XCTAssertEqual(info["rootPublicKey"] as? String, sim.rootPublicKey.rawRepresentation.map { String(format: "%02x", $0) }.joined())

        let (phoneStatus, phone) = try await request("POST", base.appendingPathComponent("phones"), json: ["number": "15558880001"])
        XCTAssertEqual(phoneStatus, 200)
        XCTAssertEqual(phone["number"] as? String, "15558880001")
        let (badStatus, _) = try await request("POST", base.appendingPathComponent("phones"), json: ["number": "abc"])
        XCTAssertEqual(badStatus, 400)

        let store = InMemoryDeviceStore()
        let client = WAClient(store: store, configuration: .local(endpoint: await sim.endpoint, noiseRoot: sim.rootPublicKey))
        var jidText: String?
        for try await event in await client.loginWithQR() {
            switch event {
            case .code(let code) where jidText == nil:
                let (status, body) = try await request(
                    "POST", base.appendingPathComponent("phones/15558880001/scan"), json: ["qr": code.text])
                XCTAssertEqual(status, 200)
                jidText = body["jid"] as? String
            case .code: break
            case .success(let login):
                XCTAssertEqual(login.jid.description, jidText)
            }
        }
        let jid = try XCTUnwrap(jidText)
        let (devicesStatus, devices) = try await request("GET", base.appendingPathComponent("phones/15558880001/devices"))
        XCTAssertEqual(devicesStatus, 200)
        XCTAssertEqual(devices["devices"] as? [String], [jid])

        // A dropped connection through the API: the client reconnects.
        let before = await client.recentTransitions.count
        let (faultStatus, _) = try await request("POST", base.appendingPathComponent("devices/\(jid)/faults"), json: ["kind": "drop"])
        XCTAssertEqual(faultStatus, 204)
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline {
            let transitions = await client.recentTransitions.dropFirst(before)
            if transitions.first?.to == .reconnecting, transitions.last?.to == .connected { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        let reconnected = await client.recentTransitions.dropFirst(before).last?.to
        XCTAssertEqual(reconnected, .connected)

        // Unlink through the API: logged out, keys wiped.
        let (unlinkStatus, _) = try await request("DELETE", base.appendingPathComponent("devices/\(jid)"))
        XCTAssertEqual(unlinkStatus, 204)
        try await client.waitForState(.loggedOut, timeout: .seconds(5))
        let wiped = try await store.loadDevice()
        XCTAssertNil(wiped)

        server.cancel()
        _ = await server.result
        await sim.shutdown()
    }

    /// `POST /devices` registers companions linked before (no pairing) with their server prekeys;
    /// a signed prekey that does not verify under the identity key is refused and nothing is kept.
    func testControlAPIProvisionsLinkedDevicesThatLogIn() async throws {
        let (sim, server, base) = try await startControlAPI()

        let record = DeviceRecord.generate()
        let other = DeviceRecord.generate()
        func entry(signature: Data) -> [String: Any] {
            [
                "phone": "15558880021", "noiseKey": record.noiseKey.publicKey.rawRepresentation.base64EncodedString(),
                "identityKey": record.identityKey.publicKey.rawRepresentation.base64EncodedString(),
                "registrationId": record.registrationID,
                "signedPreKey": ["id": 1, "key": record.signedPreKey.keyPair.publicKey.rawRepresentation.base64EncodedString(),
                                 "signature": signature.base64EncodedString()],
                "preKeys": [1, 2].map { ["id": $0, "key": Data(repeating: UInt8($0), count: 32).base64EncodedString()] },
            ]
        }
        // Signed by another identity: refused, nothing registered.
        var (status, body) = try await request("POST", base.appendingPathComponent("devices"),
                                               json: ["devices": [entry(signature: other.signedPreKey.signature)]])
        XCTAssertEqual(status, 422, "\(body)")
        (_, body) = try await request("GET", base.appendingPathComponent("stats"))
        XCTAssertEqual(body["devices"] as? Int, 0)
        (status, _) = try await request("POST", base.appendingPathComponent("devices"), json: ["devices": [["phone": "1"]]])
        XCTAssertEqual(status, 400)

        (status, body) = try await request("POST", base.appendingPathComponent("devices"),
                                           json: ["devices": [entry(signature: record.signedPreKey.signature)]])
        XCTAssertEqual(status, 200, "\(body)")
        let jidText = try XCTUnwrap((body["jids"] as? [String])?.first)
        let jid = try JID(parsing: jidText)
        XCTAssertEqual(jid.user, "15558880021")
        (_, body) = try await request("GET", base.appendingPathComponent("devices/\(jidText)"))
        XCTAssertEqual(body["uploadedPreKeys"] as? Int, 2)

        // It logs in with its noise key like a paired device.
        var linked = record
        linked.jid = jid
        linked.account = WAAdv_ADVSignedDeviceIdentity()
        let client = WAClient(store: InMemoryDeviceStore(linked),
                              configuration: .local(endpoint: await sim.endpoint, noiseRoot: sim.rootPublicKey))
        try await client.start()
        try await client.waitForState(.connected, timeout: .seconds(10))
        (_, body) = try await request("GET", base.appendingPathComponent("stats"))
        XCTAssertEqual(body["connections"] as? Int, 1)
        XCTAssertEqual(body["devices"] as? Int, 1)
        await client.stop()
        server.cancel()
        await sim.shutdown()
    }

    func testControlAPIPhonesMessageEachOther() async throws {
        let (sim, server, base) = try await startControlAPI()
        for number in ["15558880011", "15558880012"] {
            let (status, _) = try await request("POST", base.appendingPathComponent("phones"), json: ["number": number])
            XCTAssertEqual(status, 200)
        }

        // 1:1: phone A → phone B, B decrypts it, reads it, A sees "read".
        let (sendStatus, sent) = try await request(
            "POST", base.appendingPathComponent("phones/15558880011/messages"),
            json: ["to": "15558880012@s.whatsapp.net", "text": "over http"])
        XCTAssertEqual(sendStatus, 200)
        let id = try XCTUnwrap(sent["id"] as? String)
        let (listStatus, list) = try await request("GET", base.appendingPathComponent("phones/15558880012/messages"))
        XCTAssertEqual(listStatus, 200)
        let messages = list["messages"] as? [[String: Any]] ?? []
        XCTAssertEqual(messages.count, 1)
        XCTAssertEqual(messages.first?["id"] as? String, id)
        XCTAssertEqual(messages.first?["text"] as? String, "over http")
        XCTAssertEqual(messages.first?["sender"] as? String, "15558880011@s.whatsapp.net")
        let (_, delivered) = try await request("GET", base.appendingPathComponent("phones/15558880011/messages/\(id)/status"))
        XCTAssertEqual(delivered["status"] as? String, "delivered")
        let (readStatus, _) = try await request(
            "POST", base.appendingPathComponent("phones/15558880012/read"), json: ["chat": "15558880011@s.whatsapp.net", "ids": [id]])
        XCTAssertEqual(readStatus, 204)
        let (_, read) = try await request("GET", base.appendingPathComponent("phones/15558880011/messages/\(id)/status"))
        XCTAssertEqual(read["status"] as? String, "read")
        let (unknownStatus, _) = try await request(
            "POST", base.appendingPathComponent("phones/15558880011/messages"), json: ["to": "19990000000@s.whatsapp.net", "text": "x"])
        XCTAssertEqual(unknownStatus, 422)

        // Media: A sends B a document over HTTP; B's copy, fetched and decrypted, has the same bytes.
        let file = Data((0..<3_000).map { UInt8($0 % 251) })
        let (mediaStatus, mediaSent) = try await request(
            "POST", base.appendingPathComponent("phones/15558880011/media"),
            json: ["to": "15558880012@s.whatsapp.net", "kind": "document", "mimetype": "application/pdf",
                   "fileName": "f.pdf", "data": file.base64EncodedString()])
        XCTAssertEqual(mediaStatus, 200)
        let mediaID = try XCTUnwrap(mediaSent["id"] as? String)
        let (fetchStatus, fetched) = try await request("GET", base.appendingPathComponent("phones/15558880012/messages/\(mediaID)/media"))
        XCTAssertEqual(fetchStatus, 200)
        XCTAssertEqual((fetched["data"] as? String).flatMap { Data(base64Encoded: $0) }, file)
        let (badKindStatus, _) = try await request(
            "POST", base.appendingPathComponent("phones/15558880011/media"),
            json: ["to": "15558880012@s.whatsapp.net", "kind": "hologram", "mimetype": "x/y", "data": ""])
        XCTAssertEqual(badKindStatus, 400)

        // Group: created over HTTP, B gets A's group text.
        let (groupStatus, group) = try await request(
            "POST", base.appendingPathComponent("groups"),
            json: ["creator": "15558880011", "participants": ["15558880012"], "subject": "http group"])
        XCTAssertEqual(groupStatus, 200)
        let groupJID = try XCTUnwrap(group["jid"] as? String)
        XCTAssertTrue(groupJID.hasSuffix("@g.us"))
        let (groupSendStatus, groupSent) = try await request(
            "POST", base.appendingPathComponent("groups/\(groupJID)/messages"), json: ["from": "15558880011", "text": "to the group"])
        XCTAssertEqual(groupSendStatus, 200)
        let (_, after) = try await request("GET", base.appendingPathComponent("phones/15558880012/messages"))
        let groupMessage = (after["messages"] as? [[String: Any]] ?? []).first { $0["id"] as? String == groupSent["id"] as? String }
        XCTAssertEqual(groupMessage?["chat"] as? String, groupJID)
        XCTAssertEqual(groupMessage?["text"] as? String, "to the group")

        server.cancel()
        _ = await server.result
        await sim.shutdown()
    }
}
