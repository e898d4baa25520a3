import Foundation
import WABinary
import WAClient
import WACrypto
import WASim
import XCTest

/// The simulator answers what a real client asks right after login, so none stalls.
final class PostLoginQueryTests: XCTestCase {
    private func iq(_ xmlns: String, _ type: String, _ children: [Node]) -> Node {
        Node("iq", [Attribute("to", .jid(.serverJID)), Attribute("type", .string(type)), Attribute("xmlns", .string(xmlns))],
             content: .nodes(children))
    }

    func testAnswersConnectQueries() async throws {
        let sim = try WASim()
        try await sim.start()
        await sim.createPhone(number: "15559990001")
        let store = InMemoryDeviceStore()
        let client = WAClient(store: store, configuration: .local(endpoint: await sim.endpoint, noiseRoot: sim.rootPublicKey))
        var jid: JID?
        for try await event in await client.loginWithQR() {
            switch event {
            case .code(let code) where jid == nil: jid = try await sim.scanQR(phone: "15559990001", qr: code.text)
            case .code: break
            case .success: break
            }
        }
        let device = try XCTUnwrap(jid)
        let record = try await store.loadDevice()
        let identity = try XCTUnwrap(record).identityKey

        // Prekey count, upload (as whatsmeow words it), count again.
        let count = try await client.sendIQ(iq("encrypt", "get", [Node("count")]))
        XCTAssertEqual(count.child("count")?.string("value"), "0")
        XCTAssertEqual(count.jid("from"), .serverJID)
        func upload(signedBy signer: Curve25519KeyPair, identity: Curve25519PublicKey, skeyID: UInt8) throws -> (Node, Data) {
            let keys = (1...3).map { id in
                Node("key", content: .nodes([
                    Node("id", content: .bytes([0, 0, UInt8(id)])),
                    Node("value", content: .bytes([UInt8](Curve25519KeyPair.generate().publicKey.rawRepresentation))),
                ]))
            }
            let signed = Curve25519KeyPair.generate().publicKey.rawRepresentation
            // XEdDSA over the 33-byte Signal form of the key (0x05 ‖ key).
            let signature = try XEdDSA.sign(Data([5]) + signed, privateKey: signer.privateKey)
            return (iq("encrypt", "set", [
                Node("registration", content: .bytes([0, 0, 1, 2])),
                Node("type", content: .bytes([5])),
                Node("identity", content: .bytes([UInt8](identity.rawRepresentation))),
                Node("list", content: .nodes(keys)),
                Node("skey", content: .nodes([
                    Node("id", content: .bytes([0, 0, skeyID])),
                    Node("value", content: .bytes([UInt8](signed))),
                    Node("signature", content: .bytes([UInt8](signature))),
                ])),
            ]), signed)
        }
        let (good, signed) = try upload(signedBy: identity, identity: identity.publicKey, skeyID: 2)
        _ = try await client.sendIQ(good)
        let after = try await client.sendIQ(iq("encrypt", "get", [Node("count")]))
        XCTAssertEqual(after.child("count")?.string("value"), "3")
        let stored = await sim.device(device)
        XCTAssertEqual(stored?.preKeys[2].map { $0.count }, 32)
        XCTAssertEqual(stored?.signedPreKey.id, 2)
        XCTAssertEqual(stored?.signedPreKey.key, signed)

        let props = try await client.sendIQ(iq("abt", "get", [Node("props", [Attribute("protocol", "1")])]))
        XCTAssertEqual(props.child("props")?.string("protocol"), "1")
        let media = try await client.sendIQ(iq("w:m", "set", [Node("media_conn")]))
        let conn = try XCTUnwrap(media.child("media_conn"))
        for attribute in ["auth", "ttl", "auth_ttl", "max_buckets"] { XCTAssertNotNil(conn.string(attribute), attribute) }
        XCTAssertNotNil(conn.child("host")?.string("hostname"))
        let passive = try await client.sendIQ(iq("passive", "set", [Node("active")]))
        XCTAssertEqual(passive.string("type"), "result")

        // Slow answers: still answered, later.
        await sim.inject(.slowAnswers(.milliseconds(300)), device: device)
        let started = ContinuousClock.now
        _ = try await client.sendIQ(iq("w:p", "get", [Node("ping")]))
        XCTAssertGreaterThanOrEqual(ContinuousClock.now - started, .milliseconds(300))
        // Missing answers: the client's IQ timeout fires with its typed code.
        await sim.inject(.ignorePings(true), device: device)
        do {
            _ = try await client.sendIQ(iq("w:p", "get", [Node("ping")]), timeout: .milliseconds(200))
            XCTFail("an unanswered IQ must time out")
        } catch let error as WAClientError {
            XCTAssertEqual(error.code, .timeout)
        }
        await client.stop()
        await sim.shutdown()
    }

    /// The server's prekey rule: a signed prekey whose signature does not verify under the device's
    /// identity key (or an upload naming another identity) is refused with an iq error and kept
    /// nowhere; a malformed upload is a bad request.
    func testRefusesPreKeyUploadWithBadSignedPreKeySignature() async throws {
        let (sim, client, store, device) = try await linked("15559990002")
        let record = try await store.loadDevice()
        let identity = try XCTUnwrap(record).identityKey
        let before = await sim.device(device)?.signedPreKey
        func upload(identity: Curve25519PublicKey, signer: Curve25519KeyPair, tamper: Bool = false, dropSkey: Bool = false) throws -> Node {
            let key = Curve25519KeyPair.generate().publicKey.rawRepresentation
            var signature = try XEdDSA.sign(Data([5]) + key, privateKey: signer.privateKey)
            if tamper { signature[signature.startIndex] ^= 1 }
            var children = [
                Node("registration", content: .bytes([0, 0, 1, 2])),
                Node("type", content: .bytes([5])),
                Node("identity", content: .bytes([UInt8](identity.rawRepresentation))),
                Node("list", content: .nodes([Node("key", content: .nodes([
                    Node("id", content: .bytes([0, 0, 7])),
                    Node("value", content: .bytes([UInt8](Curve25519KeyPair.generate().publicKey.rawRepresentation))),
                ]))])),
            ]
            if !dropSkey {
                children.append(Node("skey", content: .nodes([
                    Node("id", content: .bytes([0, 0, 9])), Node("value", content: .bytes([UInt8](key))),
                    Node("signature", content: .bytes([UInt8](signature))),
                ])))
            }
            return iq("encrypt", "set", children)
        }
        let stranger = Curve25519KeyPair.generate()
        let cases: [(String, Node, String)] = [
            ("tampered signature", try upload(identity: identity.publicKey, signer: identity, tamper: true), "406"),
            ("signed by another key", try upload(identity: identity.publicKey, signer: stranger), "406"),
            ("another identity", try upload(identity: stranger.publicKey, signer: stranger), "406"),
            ("no skey", try upload(identity: identity.publicKey, signer: identity, dropSkey: true), "400"),
        ]
        for (name, node, code) in cases {
            do {
                _ = try await client.sendIQ(node)
                XCTFail("\(name): the upload must be refused")
            } catch let error as WAClientError {
                XCTAssertEqual(error.code, .iqError, name)
                XCTAssertTrue(error.message.contains(code), "\(name): \(error.message)")
            }
        }
        let refused = await sim.device(device)
        XCTAssertNil(refused?.preKeys[7], "a refused upload keeps no prekey")
        XCTAssertEqual(refused?.signedPreKey.key, before?.key, "a refused upload keeps no signed prekey")
        _ = try await client.sendIQ(try upload(identity: identity.publicKey, signer: identity))
        let kept = await sim.device(device)
        XCTAssertEqual(kept?.signedPreKey.id, 9, "a verifying upload is kept")
        await client.stop()
        await sim.shutdown()
    }

    /// The server answers a query it does not know with `<error code=501>`, not an empty result.
    func testUnknownIQGetsNotImplementedError() async throws {
        let (sim, client, _, _) = try await linked("15559990003")
        for query in [iq("w:something-new", "get", [Node("whatever")]), iq("w:m", "get", [Node("other")]),
                      iq("md", "get", [Node("ref")]), iq("encrypt", "get", [Node("digest")])] {
            do {
                _ = try await client.sendIQ(query)
                XCTFail("\(query.string("xmlns") ?? ""): an unknown iq must get an error")
            } catch let error as WAClientError {
                XCTAssertEqual(error.code, .iqError)
                XCTAssertTrue(error.message.contains("501 feature-not-implemented"), error.message)
            }
        }
        await client.stop()
        await sim.shutdown()
    }

    /// `<iq xmlns=privacy>` token issues: a well-formed one is answered with a result; a malformed
    /// entry is 400, an unknown holder 404 (the server's own parsing, never an empty result).
    func testPrivacyTokenIssuesAreCheckedByTheServer() async throws {
        let (sim, client, _, _) = try await linked("15559990004")
        let peer = await sim.createPhone(number: "15559990005")
        let now = String(Int(Date().timeIntervalSince1970))
        func token(_ attributes: [Attribute]) -> Node { Node("tokens", content: .nodes([Node("token", attributes)])) }
        let good = [Attribute("jid", .jid(peer.lid)), Attribute("t", .string(now)), Attribute("type", "trusted_contact")]
        let answer = try await client.sendIQ(iq("privacy", "set", [token(good)]))
        XCTAssertEqual(answer.string("type"), "result")
        let issued = await sim.issuedPrivacyToken(by: "15559990004", for: "15559990005")
        XCTAssertEqual(issued?.count, 32)
        let refused: [(Node, String)] = [
            (iq("privacy", "set", [Node("tokens")]), "400"),
            (iq("privacy", "set", [token([Attribute("jid", .jid(peer.lid)), Attribute("t", "soon"), Attribute("type", "trusted_contact")])]), "400"),
            (iq("privacy", "set", [token([Attribute("jid", .jid(peer.lid)), Attribute("t", .string(now)), Attribute("type", "other")])]), "400"),
            (iq("privacy", "set", [token([Attribute("jid", .jid(JID(user: "123", server: JID.groupServer))), Attribute("t", .string(now)),
                                          Attribute("type", "trusted_contact")])]), "400"),
            (iq("privacy", "set", [token([Attribute("jid", .jid(JID(user: "15559990099", server: JID.userServer))),
                                          Attribute("t", .string(now)), Attribute("type", "trusted_contact")])]), "404"),
        ]
        for (query, code) in refused {
            do {
                _ = try await client.sendIQ(query)
                XCTFail("a malformed privacy iq must be refused")
            } catch let error as WAClientError {
                XCTAssertEqual(error.code, .iqError)
                XCTAssertTrue(error.message.contains(code), error.message)
            }
        }
        await client.stop()
        await sim.shutdown()
    }

    private func linked(_ number: String) async throws -> (WASim, WAClient, InMemoryDeviceStore, JID) {
        let sim = try WASim()
        try await sim.start()
        await sim.createPhone(number: number)
        let store = InMemoryDeviceStore()
        let client = WAClient(store: store, configuration: .local(endpoint: await sim.endpoint, noiseRoot: sim.rootPublicKey))
        var jid: JID?
        for try await event in await client.loginWithQR() {
            if case .code(let code) = event, jid == nil { jid = try await sim.scanQR(phone: number, qr: code.text) }
        }
        return (sim, client, store, try XCTUnwrap(jid))
    }
}
