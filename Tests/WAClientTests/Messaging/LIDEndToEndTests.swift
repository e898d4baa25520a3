import Foundation
import WABinary
import WAClient
import WASim
import WASignal
import XCTest

/// A device store without a PN↔LID table: a client that can only address phone numbers.
actor PNOnlyStore: DeviceStore, SignalStoreProvider, PrivacyTokenStore {
    private let inner: InMemoryDeviceStore
    init(_ inner: InMemoryDeviceStore = InMemoryDeviceStore()) { self.inner = inner }
    func loadDevice() async throws -> DeviceRecord? { try await inner.loadDevice() }
    func saveDevice(_ record: DeviceRecord) async throws { try await inner.saveDevice(record) }
    func wipe() async throws { try await inner.wipe() }
    func signalStore(for record: DeviceRecord) async throws -> any SignalProtocolStore { try await inner.signalStore(for: record) }
    func allocatePreKeyIDs(_ count: Int) async throws -> [UInt32] { try await inner.allocatePreKeyIDs(count) }
    func storePrivacyTokens(_ tokens: [PrivacyToken]) async throws { try await inner.storePrivacyTokens(tokens) }
    func privacyToken(for user: JID) async throws -> PrivacyToken? { try await inner.privacyToken(for: user) }
    func setPrivacyTokenSenderTimestamp(_ timestamp: Date, for user: JID) async throws {
        try await inner.setPrivacyTokenSenderTimestamp(timestamp, for: user)
    }
    func deleteExpiredPrivacyTokens(before cutoff: Date) async throws -> Int { try await inner.deleteExpiredPrivacyTokens(before: cutoff) }
    func nctSalt() async throws -> Data? { try await inner.nctSalt() }
    func storeNCTSalt(_ salt: Data?) async throws { try await inner.storeNCTSalt(salt) }
}

/// LID addressing against the simulator, which refuses DMs to the number of a LID-migrated
/// account (every simulated phone is, unless made otherwise).
final class LIDEndToEndTests: XCTestCase {
    func testADMToAMigratedContactGoesToItsLIDAndAPNOnlyClientIsRefused() async throws {
        let harness = try await SimHarness.start()
        let sim = harness.sim
        let store = InMemoryDeviceStore()
        let client = await harness.messagingClient(store: store)
        let me = "15550100301", peer = "15550100302", legacy = "15550100303"
        let info = try await within(20) { try await harness.qrLogin(client, phone: me) }
        let phone = await sim.createPhone(number: peer)
        XCTAssertTrue(phone.lidMigrated)

        // Asked by number: usync tells the LID, the DM goes there and is delivered.
        let sent = try await client.sendText(to: user(peer), text: "to the LID")
        XCTAssertEqual(sent.chat, user(peer), "the caller's address is kept")
        try await eventually(5, "delivered to the migrated phone") {
            await sim.receivedMessages(phone: peer).contains { $0.id == sent.id && $0.text == "to the LID" && $0.chat == user(me) }
        }
        let learned = try await store.lid(forPN: user(peer))
        XCTAssertEqual(learned, phone.lid)
        let ownLID = try XCTUnwrap(info.lid)
        let ownNumber = try await store.pn(forLID: ownLID)
        XCTAssertEqual(ownNumber, user(me), "our own mapping, from the login")

        // The phone answers LID-addressed; the client shows it by number, with the LID beside it.
        let log = EventLog.watching(client)
        let answer = try await sim.sendText(from: peer, to: user(me), text: "hi back")
        try await eventually(5, "answer received") { await log.received.contains { $0.id == answer } }
        let received = await log.received.first { $0.id == answer }
        XCTAssertEqual(received?.chat, user(peer))
        XCTAssertEqual(received?.sender.user, peer)
        XCTAssertEqual(received?.senderLID?.user, phone.lid.user)
        XCTAssertEqual(received?.chatLID, phone.lid)
        XCTAssertEqual(received?.addressingMode, .lid)
        await client.stop()

        // A client with no LID table sends to the number: the simulator refuses it (463).
        let pnOnly = PNOnlyStore()
        let old = WAClient(store: pnOnly, configuration: await harness.configuration(), features: [MessagingFeature(store: pnOnly)])
        let oldLog = EventLog.watching(old)
        _ = try await within(20) { try await harness.qrLogin(old, phone: me) }
        do {
            _ = try await old.sendText(to: user(peer), text: "by number", id: "3EB0PN0001")
            XCTFail("a PN-addressed DM to a migrated account must be refused")
        } catch let error as WAClientError {
            XCTAssertEqual(error.code, .serverError)
        }
        try await eventually(5, "failed status") {
            await oldLog.events.contains {
                guard case .messageStatus(let u) = $0 else { return false }
                return u.messageIDs == ["3EB0PN0001"] && u.status == .failed(code: 463)
            }
        }
        let leaked = await sim.receivedMessages(phone: peer).contains { $0.id == "3EB0PN0001" }
        XCTAssertFalse(leaked)
        let tokenRefusals = await sim.privacyTokenRefusals
        XCTAssertEqual(tokenRefusals, 0, "refused for its addressing, not for want of a privacy token")
        // An account not migrated yet is still reached by number, with the token it issued us
        // (a client with no LID table cannot derive a cstoken, which needs the recipient's LID).
        await sim.createPhone(number: legacy, lidMigrated: false)
        try await sim.phoneIssuesPrivacyToken(from: legacy, to: user(me))
        try await eventually(5, "token stored by number") { (try? await pnOnly.privacyToken(for: user(legacy))) != nil }
        let byNumber = try await old.sendText(to: user(legacy), text: "old style")
        try await eventually(5, "delivered by number") { await sim.receivedMessages(phone: legacy).contains { $0.id == byNumber.id } }
        await harness.shutdown(old)
    }
    /// A session opened by number (a client from before LID addressing, talking to an account not
    /// yet migrated) survives the move: once the peer is migrated and the upgraded client knows its
    /// LID, the session moves to the LID with its ratchet, the next DM is a plain `msg` to the LID,
    /// and the peer's answer from its LID decrypts.
    func testASessionOpenedByNumberKeepsItsRatchetAfterThePeerMovesToLID() async throws {
        let harness = try await SimHarness.start()
        let sim = harness.sim
        let me = "15550100311", peer = "15550100312"
        await sim.createPhone(number: me, lidMigrated: false)
        let peerPhone = await sim.createPhone(number: peer, lidMigrated: false)
        let shared = InMemoryDeviceStore()
        let pnOnly = PNOnlyStore(shared)
        let old = WAClient(store: pnOnly, configuration: await harness.configuration(), features: [MessagingFeature(store: pnOnly)])
        let oldLog = EventLog.watching(old)
        _ = try await within(20) { try await harness.qrLogin(old, phone: me) }
        let hello = try await sim.sendText(from: peer, to: user(me), text: "hello by number")
        try await eventually(5, "received by number") { await oldLog.received.contains { $0.id == hello } }
        let reply = try await old.sendText(to: user(peer), text: "reply by number")
        try await eventually(5, "reply delivered") { await sim.receivedMessages(phone: peer).contains { $0.id == reply.id } }
        let replyTypes = await sim.encryptionTypes(phone: peer, id: reply.id)
        XCTAssertEqual(replyTypes, ["msg"], "the session the phone opened carries the reply")
        let byNumber = await sim.receivedMessagesAsAddressed(phone: peer).first { $0.id == reply.id }
        XCTAssertEqual(byNumber?.sender.server, JID.userServer)
        await old.stop()

        // The peer moves to LID addressing; the upgraded client (same keys, now with a LID table) starts.
        try await sim.setLIDMigrated(peer, true)
        let upgraded = WAClient(store: shared, configuration: await harness.configuration(), features: [MessagingFeature(store: shared)])
        let log = EventLog.watching(upgraded)
        try await upgraded.start()
        try await eventually(10, "logged in again") { await upgraded.state == .connected }
        let after = try await upgraded.sendText(to: user(peer), text: "after the move")
        try await eventually(5, "delivered to the LID") { await sim.receivedMessages(phone: peer).contains { $0.id == after.id } }
        let afterTypes = await sim.encryptionTypes(phone: peer, id: after.id)
        XCTAssertEqual(afterTypes, ["msg"], "the moved session, not a new one from a bundle")
        let asAddressed = await sim.receivedMessagesAsAddressed(phone: peer).first { $0.id == after.id }
        XCTAssertEqual(asAddressed?.chat.server, JID.lidServer, "sent to the peer's LID")
        let learned = try await shared.lid(forPN: user(peer))
        XCTAssertEqual(learned, peerPhone.lid)

        let answer = try await sim.sendText(from: peer, to: user(me), text: "answer from the LID")
        try await eventually(5, "answer decrypted") { await log.received.contains { $0.id == answer } }
        let retries = await sim.retryReceiptsSent(phone: peer)
        XCTAssertEqual(retries, 0, "nothing failed to decrypt on the way")
        await harness.shutdown(upgraded)
    }
}
