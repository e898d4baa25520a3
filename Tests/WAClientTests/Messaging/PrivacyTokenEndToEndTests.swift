import Foundation
import WABinary
import WAClient
import WASim
import XCTest

/// Privacy tokens against the simulator, which (as today's server) refuses a DM to someone who
/// never messaged the sender unless it carries the recipient's `<tctoken>` or a `<cstoken>`.
final class PrivacyTokenEndToEndTests: XCTestCase {
    /// Without the phone's history sync there is no salt: a first DM to a new contact is
    /// refused with 463 until the contact's token arrives; with it the DM is delivered.
    func testANewContactNeedsItsTokenAndTheTokenIsUsedOnceItCame() async throws {
        let harness = try await SimHarness.start { $0.phoneSendsInitialSync = false }
        let sim = harness.sim
        let store = InMemoryDeviceStore()
        let client = await harness.messagingClient(store: store)
        let me = "15550100401", peer = "15550100402"
        _ = try await within(20) { try await harness.qrLogin(client, phone: me) }
        let phone = await sim.createPhone(number: peer)

        do {
            _ = try await client.sendText(to: user(peer), text: "hello stranger", id: "3EB0TOKEN0001")
            XCTFail("a DM to a new contact without a token must be refused")
        } catch let error as WAClientError {
            XCTAssertEqual(error.code, .serverError)
            XCTAssertTrue(error.message.contains("463"), error.message)
        }
        let refusals = await sim.privacyTokenRefusals
        XCTAssertEqual(refusals, 1, "refused by the token rule, not the LID-migration rule")
        let leaked = await sim.receivedMessages(phone: peer).contains { $0.id == "3EB0TOKEN0001" }
        XCTAssertFalse(leaked)

        // The contact issues its token to us: the server hands it over in a privacy_token notification.
        try await sim.phoneIssuesPrivacyToken(from: peer, to: user(me))
        let issuedNow = await sim.issuedPrivacyToken(by: peer, for: me)
        let issued = try XCTUnwrap(issuedNow)
        try await eventually(5, "token stored under the contact's LID") {
            (try? await store.privacyToken(for: phone.lid))?.token == issued
        }
        let sent = try await client.sendText(to: user(peer), text: "now with a token")
        try await eventually(5, "delivered") { await sim.receivedMessages(phone: peer).contains { $0.id == sent.id } }
        let admissions = await sim.privacyTokenAdmissions
        XCTAssertEqual(admissions["tctoken"], 1)
        await harness.shutdown(client)
    }

    /// A token the contact issued more than four weekly buckets ago is stored but not sent.
    func testAnExpiredTokenIsNotSent() async throws {
        let harness = try await SimHarness.start { $0.phoneSendsInitialSync = false }
        let sim = harness.sim
        let store = InMemoryDeviceStore()
        let client = await harness.messagingClient(store: store)
        let me = "15550100411", peer = "15550100412"
        _ = try await within(20) { try await harness.qrLogin(client, phone: me) }
        let phone = await sim.createPhone(number: peer)
        let old = Int(Date().timeIntervalSince1970) - 35 * 86_400
        try await sim.phoneIssuesPrivacyToken(from: peer, to: user(me), timestamp: old)
        try await eventually(5, "old token stored") { (try? await store.privacyToken(for: phone.lid)) != nil }
        do {
            _ = try await client.sendText(to: user(peer), text: "stale")
            XCTFail("an expired token must not be sent (and the server refuses the DM without one)")
        } catch let error as WAClientError {
            XCTAssertEqual(error.code, .serverError)
        }
        let admissions = await sim.privacyTokenAdmissions
        XCTAssertNil(admissions["tctoken"])
        await harness.shutdown(client)
    }

    /// The phone's history sync (inline bootstrap) brings the NCT salt and the PN↔LID table: a DM
    /// to a new contact then carries a cstoken, which the server checks against the account's salt.
    func testTheSaltFromTheHistorySyncMakesACSTokenTheServerAccepts() async throws {
        let harness = try await SimHarness.start()
        let sim = harness.sim
        let store = InMemoryDeviceStore()
        let me = "15550100421", peer = "15550100422"
        let phone = await sim.createPhone(number: peer)
        let client = await harness.messagingClient(store: store)
        _ = try await within(20) { try await harness.qrLogin(client, phone: me) }
        let salt = await sim.accountNCTSalt(me)
        try await eventually(10, "salt stored from the history sync") { (try? await store.nctSalt()) == salt }
        let mapped = try await store.lid(forPN: user(peer))
        XCTAssertEqual(mapped, phone.lid, "the history sync's PN↔LID mappings are stored")

        let sent = try await client.sendText(to: user(peer), text: "first contact")
        try await eventually(5, "delivered") { await sim.receivedMessages(phone: peer).contains { $0.id == sent.id } }
        let admissions = await sim.privacyTokenAdmissions
        XCTAssertEqual(admissions["cstoken"], 1)
        let refusals = await sim.privacyTokenRefusals
        XCTAssertEqual(refusals, 0)
        await harness.shutdown(client)
    }

    /// Someone who messaged us may be answered without any token.
    func testAContactWhoMessagedUsIsAnsweredWithoutAToken() async throws {
        let harness = try await SimHarness.start { $0.phoneSendsInitialSync = false }
        let sim = harness.sim
        let client = await harness.messagingClient(store: InMemoryDeviceStore())
        let log = EventLog.watching(client)
        let me = "15550100431", peer = "15550100432"
        _ = try await within(20) { try await harness.qrLogin(client, phone: me) }
        await sim.createPhone(number: peer)
        let first = try await sim.sendText(from: peer, to: user(me), text: "hi, it's me")
        try await eventually(5, "received") { await log.received.contains { $0.id == first } }
        let reply = try await client.sendText(to: user(peer), text: "hi back")
        try await eventually(5, "reply delivered") { await sim.receivedMessages(phone: peer).contains { $0.id == reply.id } }
        let admissions = await sim.privacyTokenAdmissions
        XCTAssertEqual(admissions["contact"], 1)
        await harness.shutdown(client)
    }

    /// Two linked accounts: after A's first DM, A issues its token to B (once per weekly bucket);
    /// B receives it and its next DM to A carries it, which the server accepts as A's token.
    func testAfterADMOurTokenIsIssuedAndThePeerAnswersWithIt() async throws {
        let harness = try await SimHarness.start()
        let sim = harness.sim
        let storeA = InMemoryDeviceStore(), storeB = InMemoryDeviceStore()
        let featureA = MessagingFeature(store: storeA)
        let a = WAClient(store: storeA, configuration: await harness.configuration(), features: [featureA])
        let b = await harness.messagingClient(store: storeB)
        let numberA = "15550100441", numberB = "15550100442"
        _ = try await within(20) { try await harness.qrLogin(a, phone: numberA) }
        _ = try await within(20) { try await harness.qrLogin(b, phone: numberB) }
        let phoneA = await sim.phone(numberA), phoneB = await sim.phone(numberB)
        let lidA = try XCTUnwrap(phoneA?.lid), lidB = try XCTUnwrap(phoneB?.lid)
        let saltA = await sim.accountNCTSalt(numberA)
        try await eventually(10, "A has its salt") { (try? await storeA.nctSalt()) == saltA }

        _ = try await a.sendText(to: user(numberB), text: "one")
        _ = try await a.sendText(to: user(numberB), text: "two")
        try await eventually(5, "A issued its token once") { await featureA.privacyTokensIssued == 1 }
        let issuedToB = await sim.issuedPrivacyToken(by: numberA, for: numberB)
        let issued = try XCTUnwrap(issuedToB)
        try await eventually(5, "B stored A's token under A's LID") { (try? await storeB.privacyToken(for: lidA))?.token == issued }
        let sentAt = try await storeA.privacyToken(for: lidB)?.senderTimestamp
        XCTAssertNotNil(sentAt, "A keeps when it issued, so a restart does not issue again this week")

        let before = await sim.privacyTokenAdmissions["tctoken"] ?? 0
        let answer = try await b.sendText(to: user(numberA), text: "answer")
        try await eventually(5, "B's answer arrives") {
            await sim.privacyTokenAdmissions["tctoken"] == before + 1
        }
        XCTAssertFalse(answer.id.isEmpty)
        await a.stop()
        await harness.shutdown(b)
    }

    /// A peer's identity change: the token we issued is issued again (it is still live).
    func testAnIdentityChangeIssuesOurTokenAgain() async throws {
        let harness = try await SimHarness.start()
        let sim = harness.sim
        let store = InMemoryDeviceStore()
        let feature = MessagingFeature(store: store)
        let client = WAClient(store: store, configuration: await harness.configuration(), features: [feature])
        let me = "15550100451", peer = "15550100452"
        await sim.createPhone(number: peer)
        let info = try await within(20) { try await harness.qrLogin(client, phone: me) }
        let salt = await sim.accountNCTSalt(me)
        try await eventually(10, "salt") { (try? await store.nctSalt()) == salt }
        _ = try await client.sendText(to: user(peer), text: "hello")
        try await eventually(5, "issued") { await feature.privacyTokensIssued == 1 }
        let change = Node("notification", [
            Attribute("from", .jid(user(peer))), Attribute("type", "encrypt"), Attribute("id", "idchange1"),
            Attribute("t", .string(String(Int(Date().timeIntervalSince1970)))),
        ], content: .nodes([Node("identity")]))
        let delivered = await sim.sendNotification(change, to: info.jid)
        XCTAssertTrue(delivered)
        try await eventually(5, "issued again") { await feature.privacyTokensIssued == 2 }
        await harness.shutdown(client)
    }
}
