import Foundation
import WABinary
import WAClient
import WASim
import WASignal
import XCTest

/// A device store without a PN↔LID table: a client that can only address phone numbers.
actor PNOnlyStore: DeviceStore, SignalStoreProvider, PrivacyTokenStore {
    private let inner = InMemoryDeviceStore()
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
}
