import Foundation
import WABinary
import WAClient
import WACrypto
import WASim
import XCTest

/// Records the acks and notifications the server sends a raw client.
final class StanzaRecorder: WAClientFeature, @unchecked Sendable {
    let stanzaTags: Set<String> = ["ack", "notification"]
    private let lock = NSLock()
    private var nodes: [Node] = []
    func handle(_ node: Node, client: WAClient) async {
        lock.withLock { nodes.append(node) }
        if node.tag == "notification" { await client.ack(node) }
    }
    var seen: [Node] { lock.withLock { nodes } }
    func ack(id: String) -> Node? { seen.first { $0.tag == "ack" && $0.string("id") == id } }
}

/// The simulated server's group rules, on the wire: the metadata answer of a LID and of a
/// phone-number group (built by the server's own code), the `w:gp2` notification, and the
/// refusal of group sends addressed in the wrong form for the group.
final class GroupServerRulesTests: XCTestCase {
    func poll(_ seconds: Double = 5, _ what: String, _ body: @escaping @Sendable () async -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if await body() { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        XCTFail("\(what) did not happen within \(seconds) s")
    }

    func testMetadataNotificationsAndAddressingRules() async throws {
        let sim = try WASim(configuration: WASim.Configuration())
        try await sim.start()
        let me = "15550200001", alice = "15550200002", bob = "15550200003"
        await sim.createPhone(number: me)
        let recorder = StanzaRecorder()
        let client = WAClient(
            store: InMemoryDeviceStore(), configuration: .local(endpoint: await sim.endpoint, noiseRoot: sim.rootPublicKey),
            features: [recorder])
        var ownJID: JID?
        for try await event in await client.loginWithQR() {
            switch event {
            case .code(let code): _ = try await sim.scanQR(phone: me, qr: code.text)
            case .success(let info): ownJID = info.jid
            }
        }
        let own = try XCTUnwrap(ownJID)
        let alicePhone = await sim.createPhone(number: alice)
        let bobPhone = await sim.createPhone(number: bob)
        let mePhoneKnown = await sim.phone(me)
        let mePhone = try XCTUnwrap(mePhoneKnown)
        let lidGroup = try await sim.createGroup(creator: alice, participants: [me, bob], subject: "lid", addressing: .lid)
        let pnGroup = try await sim.createGroup(creator: alice, participants: [me, bob], subject: "pn", addressing: .phoneNumber)

        // Metadata: a LID group lists LIDs with phone_number, a PN group phone numbers with lid.
        let lidAnswer = try await client.sendIQ(try GroupNodes.metadataQueryIQ(id: "q1", group: lidGroup))
        let lidNode = try XCTUnwrap(lidAnswer.child("group"))
        XCTAssertEqual(lidNode.string("addressing_mode"), "lid")
        XCTAssertEqual(lidNode.children("participant").compactMap { $0.jid("jid") }, [alicePhone.lid, mePhone.lid, bobPhone.lid])
        XCTAssertEqual(lidNode.children("participant").compactMap { $0.jid("phone_number") }, [alicePhone.jid, mePhone.jid, bobPhone.jid])
        XCTAssertEqual(lidNode.children("participant").first?.string("type"), "superadmin")
        XCTAssertEqual(lidNode.jid("creator"), alicePhone.lid)
        XCTAssertEqual(lidNode.jid("creator_pn"), alicePhone.jid)
        let lidMetadata = try GroupNodes.parseMetadata(lidAnswer, group: lidGroup)
        XCTAssertEqual(lidMetadata.addressingMode, .lid)
        XCTAssertEqual(lidMetadata.sendAddresses, [alicePhone.lid, mePhone.lid, bobPhone.lid])
        let pnAnswer = try await client.sendIQ(try GroupNodes.metadataQueryIQ(id: "q2", group: pnGroup))
        let pnNode = try XCTUnwrap(pnAnswer.child("group"))
        XCTAssertEqual(pnNode.string("addressing_mode"), "pn")
        XCTAssertEqual(pnNode.children("participant").compactMap { $0.jid("jid") }, [alicePhone.jid, mePhone.jid, bobPhone.jid])
        XCTAssertEqual(pnNode.children("participant").compactMap { $0.jid("lid") }, [alicePhone.lid, mePhone.lid, bobPhone.lid])
        let queries = await sim.groupMetadataQueries(lidGroup)
        XCTAssertEqual(queries, 1)

        // Group sends: one skmsg, SKDM entries in the group's form, addressing_mode as the group is.
        let aliceLID0 = JID(user: alicePhone.lid.user, device: 0, server: JID.lidServer)
        func send(_ id: String, to group: JID, mode: String?, target: JID?, skmsg: Bool = true) async throws -> Node {
            var node = Node("message", attributes: ["to": .jid(group), "id": .string(id), "type": "text"])
            if let mode { node["addressing_mode"] = .string(mode) }
            var children: [Node] = []
            if let target {
                children.append(Node("participants", children: [Node("to", attributes: ["jid": .jid(target)], children: [
                    Node("enc", attributes: ["v": "2", "type": "msg"], content: .bytes([1, 2, 3])),
                ])]))
            }
            if skmsg { children.append(Node("enc", attributes: ["v": "2", "type": "skmsg"], content: .bytes([4, 5, 6]))) }
            node.content = .nodes(children)
            try await client.send(node)
            try await poll(5, "ack of \(id)") { recorder.ack(id: id) != nil }
            return try XCTUnwrap(recorder.ack(id: id))
        }
        let refused: [(String, JID, String?, JID?, Bool)] = [
            ("R1", lidGroup, "lid", alicePhone.jid, true),  // SKDM to a phone-number device in a LID group
            ("R2", lidGroup, nil, aliceLID0, true),  // no addressing_mode=lid in a LID group
            ("R3", pnGroup, "lid", aliceLID0, true),  // LID addressing in a phone-number group
            ("R4", pnGroup, nil, aliceLID0, true),  // a LID device in a phone-number group
            ("R5", lidGroup, "lid", aliceLID0, false),  // no skmsg
        ]
        for (id, group, mode, target, skmsg) in refused {
            let ack = try await send(id, to: group, mode: mode, target: target, skmsg: skmsg)
            XCTAssertEqual(ack.string("error"), "400", id)
        }
        let outside = try await sim.createGroup(creator: alice, participants: [bob], subject: "not mine", addressing: .lid)
        let notMember = try await send("R6", to: outside, mode: "lid", target: aliceLID0)
        XCTAssertEqual(notMember.string("error"), "403")
        let accepted = try await send("A1", to: lidGroup, mode: "lid", target: aliceLID0)
        XCTAssertNil(accepted.string("error"))
        let lidDevices = [alicePhone.lid, mePhone.lid, bobPhone.lid].map { JID(user: $0.user, server: JID.lidServer) }
            + [JID(user: mePhone.lid.user, device: own.device, server: JID.lidServer)]
        XCTAssertEqual(accepted.string("phash"), ParticipantHash.v2(lidDevices), "the hash is over LID devices")
        let acceptedPN = try await send("A2", to: pnGroup, mode: nil, target: alicePhone.jid)
        XCTAssertNil(acceptedPN.string("error"))
        XCTAssertEqual(acceptedPN.string("phash"), ParticipantHash.v2([alicePhone.jid, mePhone.jid, bobPhone.jid, own]))
        try await poll(5, "alice's phone saw the accepted sends") { await sim.retryReceiptsSent(phone: alice) >= 2 }
        let retries = await sim.retryReceiptsSent(phone: alice)
        XCTAssertEqual(retries, 2, "only the two accepted sends reached alice (their garbage fails to decrypt)")

        // A member leaves a LID group: a w:gp2 notification naming her by LID, with phone_number.
        try await sim.removeFromGroup(lidGroup, number: bob)
        let isGP2: @Sendable (Node) -> Bool = { $0.tag == "notification" && $0.string("type") == "w:gp2" }
        try await poll(5, "w:gp2 notification") { recorder.seen.contains(where: isGP2) }
        let notification = try XCTUnwrap(recorder.seen.first(where: isGP2))
        XCTAssertEqual(notification.jid("participant"), alicePhone.lid)
        XCTAssertEqual(notification.jid("participant_pn"), alicePhone.jid)
        XCTAssertEqual(notification.child(path: "remove", "participant")?.jid("phone_number"), bobPhone.jid)
        let parsed = try GroupNotification(parsing: notification)
        XCTAssertEqual(parsed.changes, [.remove([bobPhone.lid])])
        let left = await sim.group(lidGroup)?.members
        XCTAssertEqual(left, [alice, me])
        await client.stop()
        await sim.shutdown()
    }
}
