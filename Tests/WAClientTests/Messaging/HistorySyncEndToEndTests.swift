import Foundation
import WABinary
import WAProto
import WASim
import XCTest
@testable import WAClient

/// History sync end to end: WASim's phone sends its history in three chunks after linking
/// (INITIAL_BOOTSTRAP inline and on the media host, RECENT and PUSH_NAME only on the media
/// host); `MessagingFeature` reads the inline one, downloads the others over the sim's media
/// host (hash, MAC, zlib, proto) and hands every chunk over in order.
final class HistorySyncEndToEndTests: XCTestCase {
    actor ChunkLog {
        private(set) var chunks: [HistorySyncChunk] = []
        func add(_ chunk: HistorySyncChunk) { chunks.append(chunk) }
    }

    func linkedClient(
        _ harness: SimHarness, me: String, peers: [String], log: ChunkLog,
        _ tweak: (inout MessagingFeature.Configuration) -> Void = { _ in }
    ) async throws -> (WAClient, InMemoryDeviceStore) {
        // The phones exist before the link: the history holds their chats.
        for (i, peer) in peers.enumerated() { await harness.sim.createPhone(number: peer, pushName: "Peer \(i + 1)") }
        let store = InMemoryDeviceStore()
        var configuration = MessagingFeature.Configuration()
        tweak(&configuration)
        let feature = MessagingFeature(store: store, configuration: configuration, onHistory: { chunk in await log.add(chunk) })
        let client = WAClient(store: store, configuration: await harness.configuration(), features: [feature])
        _ = try await within(20) { try await harness.qrLogin(client, phone: me) }
        return (client, store)
    }

    func content(_ chunk: HistorySyncChunk?, file: StaticString = #filePath, line: UInt = #line) throws -> HistorySyncContent {
        switch try XCTUnwrap(chunk, file: file, line: line).outcome {
        case .success(let content): return content
        case .failure(let error): XCTFail("chunk not read: \(error.code.rawValue)", file: file, line: line); throw error
        }
    }

    func texts(_ messages: [ReceivedMessage]) -> [String] {
        messages.compactMap { if case .text(let text, _) = $0.content { text } else { nil } }
    }

    func testFreshLinkReceivesEveryChunkInOrder() async throws {
        let harness = try await SimHarness.start()
        let log = ChunkLog()
        let me = "15550410001", peer = "15550410002", other = "15550410003"
        let (client, store) = try await linkedClient(harness, me: me, peers: [peer, other], log: log)
        try await eventually(20, "three chunks handed over") { await log.chunks.count == 3 }
        let chunks = await log.chunks
        XCTAssertEqual(chunks.map(\.syncType), ["initial_bootstrap", "recent", "push_name"], "in the order the phone sent them")
        XCTAssertEqual(chunks.map(\.source), [.inline, .download, .download])
        XCTAssertEqual(chunks.map(\.chunkOrder), [1, 2, 3])
        let deviceJID = await client.device?.jid
        let device = try XCTUnwrap(deviceJID)
        let sentSync = await harness.sim.initialSync(sentTo: device)
        let sync = try XCTUnwrap(sentSync)
        XCTAssertEqual(chunks.map(\.notificationID), sync.chunks.map(\.messageID))
        // Per notification, as whatsmeow's handleProtocolMessage: one hist_sync and one peer_msg receipt.
        try await eventually(10, "receipts of the three notifications") {
            let receipts = await harness.sim.receipts(from: device)
            return sync.chunks.allSatisfy { chunk in receipts.contains { $0.string("id") == chunk.messageID && $0.string("type") == "peer_msg" } }
        }
        let receipts = await harness.sim.receipts(from: device)
        for chunk in sync.chunks {
            let types = receipts.filter { $0.string("id") == chunk.messageID }.compactMap { $0.string("type") }
            XCTAssertEqual(types.filter { $0 == "hist_sync" }.count, 1, "\(chunk.kind): \(types)")
            XCTAssertEqual(types.filter { $0 == "peer_msg" }.count, 1, "\(chunk.kind): \(types)")
        }

        // Bootstrap: two DMs and the group, their recent messages oldest first, by phone number.
        let bootstrap = try content(chunks[0])
        XCTAssertEqual(bootstrap.conversations.count, 3)
        let peerJID = JID(user: peer, server: JID.userServer)
        let simPeer = await harness.sim.phone(peer)
        let peerLID = try XCTUnwrap(simPeer).lid
        let dm = try XCTUnwrap(bootstrap.conversations.first { $0.chat == peerJID })
        XCTAssertEqual(dm.chatLID, peerLID, "the LID the same history maps the number to")
        XCTAssertEqual(texts(dm.messages), ["hello from Peer 1", "hi Peer 1, good to hear"])
        XCTAssertEqual(dm.messages.map(\.isFromMe), [false, true])
        XCTAssertEqual(dm.messages.first?.sender, peerJID)
        XCTAssertEqual(dm.messages.last?.sender, device.nonAD, "our own messages are sent by us")
        XCTAssertTrue(dm.messages.allSatisfy { $0.timestamp < Date() && $0.timestamp > Date().addingTimeInterval(-7_200) })
        let group = try XCTUnwrap(bootstrap.conversations.first { $0.chat.server == JID.groupServer })
        XCTAssertEqual(group.name, "Simulated group")
        XCTAssertTrue(group.messages.allSatisfy(\.isGroup))
        XCTAssertEqual(Set(group.messages.filter { !$0.isFromMe }.map(\.sender)), [peerJID, JID(user: other, server: JID.userServer)])
        XCTAssertEqual(bootstrap.mappings, 3)
        let salt = try await store.nctSalt()
        XCTAssertEqual(salt?.count, 32, "the salt of the inline chunk is stored")

        // Recent: the older messages; the 30-day-old one of each DM is outside the default 7 days.
        let recent = try content(chunks[1])
        let older = try XCTUnwrap(recent.conversations.first { $0.chat == peerJID })
        XCTAssertEqual(texts(older.messages), ["see you on Friday", "Friday it is"])
        XCTAssertEqual(recent.messagesDropped, 2)

        // Push names.
        let names = try content(chunks[2])
        XCTAssertTrue(names.pushNames.contains(HistoryPushName(jid: peerJID, name: "Peer 1")))
        XCTAssertTrue(names.conversations.isEmpty)
        await harness.shutdown(client)
    }

    func testTheCountBoundKeepsTheNewest() async throws {
        let harness = try await SimHarness.start()
        let log = ChunkLog()
        let (client, _) = try await linkedClient(harness, me: "15550410011", peers: ["15550410012"], log: log) {
            $0.historyMaxMessages = 2
            $0.historyMaxAge = nil
        }
        try await eventually(20, "three chunks handed over") { await log.chunks.count == 3 }
        let chunks = await log.chunks
        let bootstrap = try content(chunks[0])
        let kept = bootstrap.conversations.flatMap(\.messages)
        XCTAssertEqual(kept.count, 2)
        XCTAssertEqual(Set(texts(kept)), ["meeting at noon", "hi Peer 1, good to hear"], "the two newest of the chunk")
        let recent = try content(chunks[1])
        XCTAssertEqual(recent.conversations.flatMap(\.messages).count, 2, "no age bound: the 30-day-old message may come")
        XCTAssertEqual(recent.messagesDropped, 1)
        await harness.shutdown(client)
    }

    /// A media host that answers 503 twice: the first download is tried again (bounded, with a
    /// pause) and every chunk is read.
    func testAFailingMediaHostIsTriedAgain() async throws {
        let harness = try await SimHarness.start { $0.failingMediaDownloads = 2 }
        let log = ChunkLog()
        let me = "15550410031", peer = "15550410032"
        let (client, _) = try await linkedClient(harness, me: me, peers: [peer], log: log)
        try await eventually(30, "three chunks handed over") { await log.chunks.count == 3 }
        for chunk in await log.chunks { _ = try content(chunk) }
        let refused = await harness.sim.mediaDownloadsRefused
        XCTAssertEqual(refused, 2)
        await harness.shutdown(client)
    }

    /// A media host that fails longer than the tries: the chunk is a typed HISTORY download error.
    func testAMediaHostFailingPastTheTriesIsATypedError() async throws {
        let harness = try await SimHarness.start { $0.failingMediaDownloads = 3 }
        let log = ChunkLog()
        let me = "15550410041", peer = "15550410042"
        let (client, _) = try await linkedClient(harness, me: me, peers: [peer], log: log)
        try await eventually(30, "three chunks handed over") { await log.chunks.count == 3 }
        let chunks = await log.chunks
        let failed = chunks.compactMap { chunk -> WAClientError? in
            if case .failure(let error) = chunk.outcome { return error }
            return nil
        }
        XCTAssertEqual(failed.map(\.code), [.mediaTransferFailed], "one chunk failed its three tries")
        await harness.shutdown(client)
    }

    /// A media host that alters the RECENT blob: that chunk is a typed error, the others are
    /// read, and the client stays connected.
    func testACorruptedBlobIsATypedErrorAndTheLinkStays() async throws {
        let harness = try await SimHarness.start { $0.corruptedHistoryChunk = .recent }
        let log = ChunkLog()
        let me = "15550410021", peer = "15550410022"
        let (client, _) = try await linkedClient(harness, me: me, peers: [peer], log: log)
        try await eventually(20, "three chunks handed over") { await log.chunks.count == 3 }
        let chunks = await log.chunks
        guard case .failure(let error) = chunks[1].outcome else { return XCTFail("a corrupted blob must not be read") }
        XCTAssertEqual(error.code, .mediaHashMismatch)
        _ = try content(chunks[0])
        _ = try content(chunks[2])
        let state = await client.state
        XCTAssertEqual(state, .connected)
        await harness.shutdown(client)
    }
}
