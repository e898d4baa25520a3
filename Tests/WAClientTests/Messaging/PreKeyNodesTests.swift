import Foundation
import WABinary
import WAClient
import WACrypto
import WASignal
import XCTest

final class PreKeyNodesTests: XCTestCase {
    func testUploadServerParseBundleAnswerClientParseRoundTrip() async throws {
        let bob = try await Party.make("15550002222", device: 3, preKeyCount: 3)
        let upload = try wire(try await bob.uploadIQ())
        XCTAssertEqual(upload.string("xmlns"), "encrypt")
        XCTAssertEqual(upload.string("type"), "set")
        XCTAssertEqual(upload.jid("to"), JID.serverJID)
        XCTAssertEqual(upload.child("type")?.bytes, [0x05])
        XCTAssertEqual(upload.child("registration")?.bytes?.count, 4)
        XCTAssertEqual(upload.child("identity")?.bytes?.count, 32)
        let keys = try XCTUnwrap(upload.child("list")).children("key")
        XCTAssertEqual(keys.map { $0.child("id")?.bytes ?? [] }, [[0, 0, 100], [0, 0, 101], [0, 0, 102]])
        XCTAssertEqual(upload.child(path: "skey", "id")?.bytes, [0, 0, 7])
        XCTAssertEqual(upload.child(path: "skey", "signature")?.bytes?.count, 64)

        // Server side.
        let parsed = try PreKeyNodes.parseUpload(upload)
        let registration = await bob.store.localRegistrationID()
        let identity = await bob.store.identityKeyPair().publicKey
        XCTAssertEqual(parsed.registrationID, registration)
        XCTAssertEqual(parsed.identity, identity)
        XCTAssertEqual(parsed.preKeys.map(\.id), [100, 101, 102])
        XCTAssertEqual(parsed.preKeys[1].key, bob.preKeys[1].keyPair.publicKey)
        XCTAssertEqual(parsed.signedPreKeySignature, bob.signedPreKey.signature)

        // Bundle query → answer (one device with a one-time key, one without, one unknown).
        let unknown = JID(user: "15559999999", server: JID.userServer)
        let bob4 = JID(user: "15550002222", device: 4, server: JID.userServer)
        let query = try wire(try PreKeyNodes.bundleQueryIQ(id: "q7", devices: [bob.device, bob4, unknown]))
        XCTAssertEqual(try PreKeyNodes.parseBundleQuery(query), [bob.device, bob4, unknown])
        let answer = try wire(PreKeyNodes.bundleAnswer(to: query, bundles: [
            (bob.device, parsed.bundle(deviceID: 3, preKey: parsed.preKeys[0])),
            (bob4, parsed.bundle(deviceID: 4, preKey: nil)),
            (unknown, nil),
        ]))
        XCTAssertEqual(answer.string("id"), "q7")
        XCTAssertEqual(answer.string("type"), "result")
        let bundles = try PreKeyNodes.parseBundles(answer)
        let full = try bundles[bob.device]!.get()
        XCTAssertEqual(full.registrationID, registration)
        XCTAssertEqual(full.deviceID, 3)
        XCTAssertEqual(full.preKeyID, 100)
        XCTAssertEqual(full.preKey, bob.preKeys[0].keyPair.publicKey)
        XCTAssertEqual(full.signedPreKeyID, 7)
        XCTAssertEqual(full.signedPreKey, bob.signedPreKey.keyPair.publicKey)
        XCTAssertEqual(full.identityKey, identity)
        let noOneTime = try bundles[bob4]!.get()
        XCTAssertNil(noOneTime.preKeyID)
        XCTAssertEqual(noOneTime.deviceID, 4)
        XCTAssertThrowsError(try bundles[unknown]!.get()) { XCTAssertEqual(($0 as? WAClientError)?.code, .serverError) }

        // The parsed bundle opens a real session.
        let alice = try await Party.make("15550001111", device: 1)
        try await SessionBuilder(store: alice.store, address: SignalAddress(jid: bob.device)).process(bundle: full)
        let needing = try await alice.sender.devicesNeedingBundles([bob.device, bob4])
        XCTAssertEqual(needing, [bob4])
    }

    func testBundleWithMissingPartsIsTypedError() throws {
        let device = JID(user: "1555", device: 2, server: JID.userServer)
        let broken = try wire(Node("iq", attributes: ["id": "x", "type": "result", "from": .jid(JID.serverJID)], children: [
            Node("list", children: [
                Node("user", attributes: ["jid": .jid(device)], children: [
                    Node("registration", content: .bytes([0, 0, 1, 2])),
                    Node("identity", content: .bytes([UInt8](repeating: 9, count: 32))),
                ]),
            ]),
        ]))
        let result = try PreKeyNodes.parseBundles(broken)
        XCTAssertThrowsError(try result[device]!.get()) { XCTAssertEqual(($0 as? WAClientError)?.code, .bundleIncomplete) }

        let shortIdentity = try wire(Node("iq", attributes: ["id": "x", "type": "result"], children: [
            Node("list", children: [Node("user", attributes: ["jid": .jid(device)], children: [
                Node("registration", content: .bytes([0, 0, 1, 2])),
                Node("identity", content: .bytes([1, 2, 3])),
            ])]),
        ]))
        XCTAssertThrowsError(try PreKeyNodes.parseBundles(shortIdentity)[device]!.get()) {
            XCTAssertEqual(($0 as? WAClientError)?.code, .bundleIncomplete)
        }

        let iqError = try wire(Node("iq", attributes: ["id": "x", "type": "error"], children: [
            Node("error", attributes: ["code": "500", "text": "internal"]),
        ]))
        XCTAssertThrowsError(try PreKeyNodes.parseBundles(iqError)) { XCTAssertEqual(($0 as? WAClientError)?.code, .serverError) }
        XCTAssertThrowsError(try PreKeyNodes.bundleQueryIQ(id: "x", devices: [])) {
            XCTAssertEqual(($0 as? WAClientError)?.code, .limitExceeded)
        }
    }

    func testCountQueryAndAnswer() throws {
        let query = try wire(PreKeyNodes.countIQ(id: "c1"))
        XCTAssertEqual(query.string("xmlns"), "encrypt")
        XCTAssertEqual(query.string("type"), "get")
        XCTAssertNotNil(query.child("count"))
        let answer = try wire(PreKeyNodes.countAnswer(to: query, count: 42))
        XCTAssertEqual(try PreKeyNodes.parseCount(answer), 42)
        let low = try wire(Node("notification", attributes: ["type": "encrypt", "from": .jid(JID.serverJID), "id": "n1"],
                                children: [Node("count", attributes: ["value": "0"])]))
        XCTAssertEqual(PreKeyNodes.lowPreKeyCount(in: low), 0)
        var spoofed = low
        spoofed["from"] = .jid(JID(user: "1555", server: JID.userServer))
        XCTAssertNil(PreKeyNodes.lowPreKeyCount(in: try wire(spoofed)), "only the server may say so")
        XCTAssertThrowsError(try PreKeyNodes.parseCount(try wire(Node("iq", attributes: ["type": "result"])))) {
            XCTAssertEqual(($0 as? WAClientError)?.code, .stanzaMalformed)
        }
    }

    func testUploadIsBounded() async throws {
        let store = InMemorySignalStore()
        let identity = await store.identityKeyPair()
        let signed = try SignedPreKeyRecord.generate(id: 1, identity: identity)
        let tooMany = KeyHelper.generatePreKeys(start: 1, count: PreKeyNodes.maxUploadCount + 1)
        XCTAssertThrowsError(try PreKeyNodes.uploadIQ(
            id: "u", registrationID: 1, identity: identity.publicKey, signedPreKey: signed, preKeys: tooMany)) {
            XCTAssertEqual(($0 as? WAClientError)?.code, .limitExceeded)
        }
    }
}
