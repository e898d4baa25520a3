import Foundation
import WABinary
import WAClient
import WAProto
import WASignal
import XCTest

/// The group metadata model against answers shaped as today's server sends them, bad
/// answers (each a typed error), the cache and the `w:gp2` notification parser.
final class GroupMetadataTests: XCTestCase {
    let group = JID(user: "120363000000000077", server: JID.groupServer)
    let aliceLID = JID(user: "100000000000001", server: JID.lidServer)
    let alicePN = JID(user: "15550000001", server: JID.userServer)
    let bobLID = JID(user: "100000000000002", server: JID.lidServer)
    let bobPN = JID(user: "15550000002", server: JID.userServer)

    func answer(_ group: Node) -> Node {
        Node("iq", attributes: ["id": "g", "type": "result", "from": .jid(JID.serverJID)], children: [group])
    }

    func lidGroupNode() -> Node {
        Node("group", attributes: [
            "id": .string(group.user), "subject": "lid group", "s_t": "1700000001", "s_o": .jid(aliceLID),
            "creator": .jid(aliceLID), "creator_pn": .jid(alicePN), "creation": "1700000000", "addressing_mode": "lid",
            "p_v_id": "42", "size": "2",
        ], children: [
            Node("participant", attributes: ["jid": .jid(aliceLID), "phone_number": .jid(alicePN), "type": "superadmin"]),
            Node("participant", attributes: ["jid": .jid(bobLID), "phone_number": .jid(bobPN)]),
            Node("locked"),
        ])
    }

    func testLIDGroupAnswerAsTodaysServerSendsIt() throws {
        let metadata = try GroupNodes.parseMetadata(try wire(answer(lidGroupNode())), group: group)
        XCTAssertEqual(metadata.addressingMode, .lid)
        XCTAssertEqual(metadata.subject, "lid group")
        XCTAssertEqual(metadata.creator, aliceLID)
        XCTAssertEqual(metadata.creatorPN, alicePN)
        XCTAssertEqual(metadata.subjectSetAt, 1_700_000_001)
        XCTAssertEqual(metadata.participantVersionID, "42")
        XCTAssertEqual(metadata.size, 2)
        XCTAssertTrue(metadata.isLocked)
        XCTAssertFalse(metadata.isAnnounce)
        XCTAssertEqual(metadata.participants.map(\.jid), [aliceLID, bobLID])
        XCTAssertEqual(metadata.participants.map(\.phoneNumber), [alicePN, bobPN])
        XCTAssertEqual(metadata.participants.map(\.lid), [aliceLID, bobLID])
        XCTAssertEqual(metadata.participants.map(\.role), [.superadmin, .member])
        XCTAssertEqual(metadata.sendAddresses, [aliceLID, bobLID], "a LID group is sent to by LID")
        XCTAssertEqual(metadata.admins, [aliceLID])
    }

    func testPhoneNumberGroupCarriesLIDs() throws {
        let node = Node("group", attributes: ["id": .string(group.user), "subject": "pn", "addressing_mode": "pn"], children: [
            Node("participant", attributes: ["jid": .jid(alicePN), "lid": .jid(aliceLID), "type": "admin"]),
            Node("participant", attributes: ["jid": .jid(bobPN)]),
        ])
        let metadata = try GroupMetadata(parsing: try wire(node), expected: group)
        XCTAssertEqual(metadata.addressingMode, .phoneNumber)
        XCTAssertEqual(metadata.participants.map(\.lid), [aliceLID, nil])
        XCTAssertEqual(metadata.sendAddresses, [alicePN, bobPN])
        XCTAssertEqual(metadata.participants.first?.role, .admin)
    }

    /// Each malformed answer is a typed `client.group_metadata_invalid`, never a crash.
    func testBadMetadataIsATypedError() throws {
        var cases: [(String, Node)] = []
        func variant(_ why: String, _ change: (inout Node) -> Void) {
            var node = lidGroupNode()
            change(&node)
            cases.append((why, answer(node)))
        }
        cases.append(("no <group>", Node("iq", attributes: ["id": "g", "type": "result"], children: [Node("other")])))
        variant("no id") { $0["id"] = nil }
        variant("id not a group id") { $0["id"] = "abc@x" }
        variant("id of another group") { $0["id"] = "120363000000000078" }
        variant("unknown addressing mode") { $0["addressing_mode"] = "email" }
        variant("creation not a number") { $0["creation"] = "yesterday" }
        variant("creator not a user") { $0["creator"] = .jid(self.group) }
        variant("participant without jid") { node in
            node.content = .nodes([Node("participant", attributes: ["type": "admin"])])
        }
        variant("participant jid is a group") { node in
            node.content = .nodes([Node("participant", attributes: ["jid": .jid(self.group)])])
        }
        variant("participant jid is a device") { node in
            node.content = .nodes([Node("participant", attributes: ["jid": .jid(JID(user: "100000000000001", device: 3, server: JID.lidServer))])])
        }
        variant("phone_number is a LID") { node in
            node.content = .nodes([Node("participant", attributes: ["jid": .jid(self.aliceLID), "phone_number": .jid(self.bobLID)])])
        }
        variant("lid is a phone number") { node in
            node.content = .nodes([Node("participant", attributes: ["jid": .jid(self.alicePN), "lid": .jid(self.bobPN)])])
        }
        variant("participant twice") { node in
            node.content = .nodes([
                Node("participant", attributes: ["jid": .jid(self.aliceLID)]), Node("participant", attributes: ["jid": .jid(self.aliceLID)]),
            ])
        }
        for (why, node) in cases {
            XCTAssertThrowsError(try GroupNodes.parseMetadata(try wire(node), group: group), why) {
                XCTAssertEqual(($0 as? WAClientError)?.code, .groupMetadataInvalid, why)
            }
        }
        let tooMany = Node("group", attributes: ["id": .string(group.user)], children: (0...GroupMetadata.maxParticipants).map {
            Node("participant", attributes: ["jid": .jid(JID(user: String(15_550_000_000 + $0), server: JID.userServer))])
        })
        XCTAssertThrowsError(try GroupNodes.parseMetadata(answer(tooMany), group: group)) {
            XCTAssertEqual(($0 as? WAClientError)?.code, .limitExceeded)
        }
    }

    func testCacheIsBoundedAndExpires() throws {
        var cache = GroupMetadataCache(capacity: 2, ttl: 60)
        let now = Date(timeIntervalSince1970: 1_000)
        let groups = (1...3).map { JID(user: "12036300000000000\($0)", server: JID.groupServer) }
        cache.store(GroupMetadata(jid: groups[0]), now: now)
        cache.store(GroupMetadata(jid: groups[1]), now: now)
        XCTAssertNotNil(cache.metadata(of: groups[0], now: now))  // groups[1] is now the least recently used
        cache.store(GroupMetadata(jid: groups[2]), now: now)
        XCTAssertEqual(cache.count, 2)
        XCTAssertNil(cache.metadata(of: groups[1], now: now))
        XCTAssertNotNil(cache.metadata(of: groups[2], now: now))
        XCTAssertNil(cache.metadata(of: groups[0], now: now.addingTimeInterval(61)), "stale after the ttl")
        XCTAssertTrue(cache.invalidate(groups[2]))
        XCTAssertFalse(cache.invalidate(groups[2]))
    }

    func testGroupNotificationParsing() throws {
        let node = try wire(Node("notification", attributes: [
            "from": .jid(group), "type": "w:gp2", "id": "n1", "t": "1700000002", "participant": .jid(aliceLID),
        ], children: [
            Node("remove", children: [Node("participant", attributes: ["jid": .jid(bobLID), "phone_number": .jid(bobPN)])]),
            Node("add", children: [Node("participant", attributes: ["jid": .jid(alicePN)])]),
            Node("subject", attributes: ["subject": "new name"]),
            Node("announcement"),
        ]))
        let parsed = try GroupNotification(parsing: node)
        XCTAssertEqual(parsed.group, group)
        XCTAssertEqual(parsed.actor, aliceLID)
        XCTAssertEqual(parsed.changes, [.remove([bobLID]), .add([alicePN]), .subject("new name"), .other("announcement")])

        let create = try GroupNotification(parsing: try wire(Node("notification", attributes: [
            "from": .jid(group), "type": "w:gp2", "id": "n2", "t": "1",
        ], children: [Node("create", children: [lidGroupNode()])])))
        guard case .create(let metadata)? = create.changes.first else { return XCTFail("no create") }
        XCTAssertEqual(metadata.members, [aliceLID, bobLID])

        let bad: [Node] = [
            Node("notification", attributes: ["from": .jid(group), "type": "devices"]),
            Node("notification", attributes: ["from": .jid(alicePN), "type": "w:gp2"]),
            Node("notification", attributes: ["type": "w:gp2"]),
            Node("notification", attributes: ["from": .jid(group), "type": "w:gp2"], children: [
                Node("remove", children: [Node("participant")]),
            ]),
            Node("notification", attributes: ["from": .jid(group), "type": "w:gp2"], children: [Node("subject")]),
            Node("notification", attributes: ["from": .jid(group), "type": "w:gp2"], children: [Node("create")]),
        ]
        for node in bad {
            XCTAssertThrowsError(try GroupNotification(parsing: try wire(node))) {
                XCTAssertEqual(($0 as? WAClientError)?.code, .groupMetadataInvalid)
            }
        }
    }

    /// A group stanza may go to more than 1,024 devices, up to the largest group WhatsApp makes.
    func testGroupDeviceBound() async throws {
        XCTAssertGreaterThanOrEqual(MessageSender.maxGroupDevices, 5_000 * 5)
        let own = JID(user: "15550000009", device: 1, server: JID.userServer)
        let sender = MessageSender(store: InMemorySignalStore(), ownDevice: own, deviceIdentity: Data())
        let tooMany = (0...MessageSender.maxGroupDevices).map { JID(user: String(15_550_000_000 + $0), server: JID.userServer) }
        var message = WAE2E_Message()
        message.conversation = "x"
        do {
            _ = try await sender.groupMessage(id: "3EB0BOUND", group: group, message: message, participantDevices: tooMany)
            XCTFail("past the bound")
        } catch let error as WAClientError {
            XCTAssertEqual(error.code, .limitExceeded)
        }
        // A LID group is sent from and to LID devices only.
        do {
            _ = try await sender.groupMessage(
                id: "3EB0LIDPN", group: group, message: message, participantDevices: [alicePN], addressingMode: .lid)
            XCTFail("a LID group send from a phone-number device")
        } catch let error as WAClientError {
            XCTAssertEqual(error.code, .invalidRecipient)
        }
    }
}
