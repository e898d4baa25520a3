import Foundation
import Logging
import WABinary
import WAProto
import XCTest
@testable import WAClient

/// The inline initial history sync as `MessagingState` reads it: salt, PN↔LID mappings and
/// conversation tokens stored; a payload that does not inflate or parse is a typed error.
final class InlineHistoryTests: XCTestCase {
    func state(_ store: InMemoryDeviceStore) -> MessagingState {
        MessagingState(provider: store, configuration: .init(), logger: Logger(label: "test"))
    }

    func notification(_ inline: Data) -> WAE2E_HistorySyncNotification {
        var notification = WAE2E_HistorySyncNotification()
        notification.initialHistBootstrapInlinePayload = inline
        return notification
    }

    func testSaltMappingsAndTokensAreStored() async throws {
        let store = InMemoryDeviceStore()
        var history = WAHistorySync_HistorySync()
        history.syncType = .initialBootstrap
        history.nctSalt = Data(repeating: 7, count: 32)
        var mapping = WAHistorySync_PhoneNumberToLIDMapping()
        mapping.pnJid = "15550003333@s.whatsapp.net"
        mapping.lidJid = "100000000000033@lid"
        var broken = WAHistorySync_PhoneNumberToLIDMapping()
        broken.pnJid = "not a jid"
        broken.lidJid = "100000000000034@lid"
        history.phoneNumberToLidMappings = [mapping, broken]
        var chat = WAHistorySync_Conversation()
        chat.id = "15550003333@s.whatsapp.net"
        chat.tcToken = Data([1, 2, 3])
        chat.tcTokenTimestamp = 1_796_000_000
        chat.tcTokenSenderTimestamp = 1_796_000_500
        var group = WAHistorySync_Conversation()
        group.id = "120363000000000001@g.us"
        group.tcToken = Data([9])
        history.conversations = [chat, group]
        let bytes: Data = try history.serializedBytes()
        let zlib = Data(try TransportPayload.encodeCompressed(bytes).dropFirst())
        try await state(store).ingestInlineHistory(notification(zlib))

        let salt = try await store.nctSalt()
        XCTAssertEqual(salt, history.nctSalt)
        let lid = try await store.lid(forPN: JID(user: "15550003333", server: JID.userServer))
        XCTAssertEqual(lid, JID(user: "100000000000033", server: JID.lidServer))
        let token = try await store.privacyToken(for: JID(user: "100000000000033", server: JID.lidServer))
        XCTAssertEqual(token?.token, Data([1, 2, 3]), "stored under the LID the same history maps the number to")
        XCTAssertEqual(token?.senderTimestamp, Date(timeIntervalSince1970: 1_796_000_500))
        let groupToken = try await store.privacyToken(for: JID(user: "120363000000000001", server: JID.groupServer))
        XCTAssertNil(groupToken, "groups take no tokens")
    }

    func testBadPayloadsAreTypedErrors() async throws {
        let store = InMemoryDeviceStore()
        let garbage = Data([0x78, 0x9C, 1, 2, 3, 4])
        let notProto = Data(try TransportPayload.encodeCompressed(Data([0xFF, 0xFF, 0xFF, 0xFF])).dropFirst())
        let bomb = Data(try TransportPayload.encodeCompressed(Data(count: MessagingState.maxInlineHistory + 1)).dropFirst())
        for (payload, code) in [(garbage, WAClientError.Code.payloadMalformed), (notProto, .payloadMalformed), (bomb, .payloadTooLarge)] {
            do {
                try await state(store).ingestInlineHistory(notification(payload))
                XCTFail("a bad inline history must throw")
            } catch let error as WAClientError {
                XCTAssertEqual(error.code, code)
            }
        }
        let salt = try await store.nctSalt()
        XCTAssertNil(salt)
    }
}
