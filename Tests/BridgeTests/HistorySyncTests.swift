import AMQP
@testable import Bridge
import BridgeStore
import Foundation
import WABinary
import WAClient
import WASim
import XCTest

/// History sync at the bridge: WASim's phone sends its history after linking (three chunks,
/// inline and on the media host); the device stores conversations, messages and push names in
/// its `history.sqlite` within the bounds and publishes one `history.sync` per chunk on the
/// real test broker, valid against its schema.
final class HistorySyncTests: XCTestCase {
    struct Running {
        let rig: EventRig
        let manager: DeviceManager
        let publisher: Task<Void, Never>
        let connection: AMQPConnection
        let me: String
        let peer: String

        func data(_ device: String) async throws -> any DeviceDataStoring { try await manager.store.device(DeviceID(device)).data }

        func stop() async {
            publisher.cancel()
            await publisher.value
            await connection.close()
            await manager.shutdown()
            await rig.shutdown()
        }
    }

    func link(_ device: String, me: String, peer: String, history: HistorySettings,
              settings patch: String? = nil,
              _ simTweak: (inout WASim.Configuration) -> Void = { _ in }) async throws -> Running {
        let rig = try await EventRig.start(devices: [device], simTweak)
        let m = try await rig.manager(history: history)
        let (publisher, conn) = try await rig.publish(try XCTUnwrap(m.recorder as? OutboxRecorder))
        // The peer exists before the link: the phone's history holds their chats.
        await rig.h.sim.createPhone(number: peer, pushName: "Peer One")
        _ = try await rig.link(m, device: device, phone: me, settings: patch)
        let inbox = rig.inbox
        try await waitUntil(30, "three history.sync events") { await inbox.count("history.sync") == 3 }
        return Running(rig: rig, manager: m, publisher: publisher, connection: conn, me: me, peer: peer)
    }

    /// The settings: small defaults, 0 days is no age bound, bad values refused with a code.
    func testSettingsAndTheirDefaults() throws {
        let defaults = try BridgeConfiguration.resolve(flags: [:], environment: [:], fileContents: nil).historySettings()
        XCTAssertEqual(defaults, HistorySettings(bounds: HistoryBounds(maxAge: 7 * 86_400, maxMessages: 1_000), publishMessages: false))
        let set = try BridgeConfiguration.resolve(flags: [:], environment: [
            "WABRIDGE_HISTORY_DAYS": "0", "WABRIDGE_HISTORY_MAX_MESSAGES": "50", "WABRIDGE_HISTORY_EVENTS": "true",
        ], fileContents: nil).historySettings()
        XCTAssertEqual(set, HistorySettings(bounds: HistoryBounds(maxAge: nil, maxMessages: 50), publishMessages: true))
        for (key, value) in [("WABRIDGE_HISTORY_DAYS", "-1"), ("WABRIDGE_HISTORY_MAX_MESSAGES", "lots"), ("WABRIDGE_HISTORY_EVENTS", "maybe")] {
            XCTAssertThrowsError(try BridgeConfiguration.resolve(flags: [:], environment: [key: value], fileContents: nil)) { error in
                XCTAssertEqual((error as? ConfigurationError)?.code, .invalidValue, key)
            }
        }
        let local = try BridgeConfiguration.resolve(flags: [:], environment: ["WABRIDGE_WA_URL": "ws://127.0.0.1:5280/ws/chat"],
                                                    fileContents: nil).deviceManagerConfiguration()
        XCTAssertEqual(local.client.mediaScheme, "http", "a plain ws:// endpoint is a simulator, its media host plain http")
        let real = try BridgeConfiguration.resolve(flags: [:], environment: [:], fileContents: nil).deviceManagerConfiguration()
        XCTAssertEqual(real.client.mediaScheme, "https")
    }

    /// Each client error of a chunk maps to the event's stable code.
    func testFailureCodes() {
        XCTAssertEqual(EventFactory.historyFailureCode(.mediaHashMismatch), "HISTORY_BLOB_INVALID")
        XCTAssertEqual(EventFactory.historyFailureCode(.mediaBadMAC), "HISTORY_BLOB_INVALID")
        XCTAssertEqual(EventFactory.historyFailureCode(.payloadMalformed), "HISTORY_PAYLOAD_INVALID")
        XCTAssertEqual(EventFactory.historyFailureCode(.payloadTooLarge), "HISTORY_PAYLOAD_INVALID")
        XCTAssertEqual(EventFactory.historyFailureCode(.mediaTransferFailed), "HISTORY_DOWNLOAD_FAILED")
        XCTAssertEqual(EventFactory.historyFailureCode(.notConnected), "HISTORY_DOWNLOAD_FAILED", "the link dropped mid-download")
    }

    func testAFreshLinkStoresTheHistoryAndPublishesHistorySync() async throws {
        let run = try await link("hs1", me: "15557100001", peer: "15557100002",
                                 history: HistorySettings(bounds: HistoryBounds(maxAge: 7 * 86_400, maxMessages: 1_000),
                                                          publishMessages: true))
        let inbox = run.rig.inbox
        let events = await inbox.of("history.sync")
        XCTAssertEqual(events.map { $0.data["sync_type"]?.stringValue }, ["initial_bootstrap", "recent", "push_name"])
        XCTAssertEqual(events.map { $0.data["source"]?.stringValue }, ["inline", "download", "download"])
        XCTAssertEqual(events.map { $0.routingKey }, Array(repeating: "hs1.history.sync", count: 3))
        XCTAssertTrue(events.allSatisfy { $0.data["error"] == .null })
        // Bootstrap: the DM (2 recent texts) and the group (3); recent: the DM's 2 older texts,
        // its 30-day-old one outside the 7 days; push names: both phones.
        XCTAssertEqual(events.map { $0.data["conversations"]?.numberValue.map { Int($0) } }, [2, 1, 0])
        XCTAssertEqual(events.map { $0.data["messages"]?.numberValue.map { Int($0) } }, [5, 2, 0])
        XCTAssertEqual(events.map { $0.data["messages_dropped"]?.numberValue.map { Int($0) } }, [0, 1, 0])
        XCTAssertEqual(events.map { $0.data["push_names"]?.numberValue.map { Int($0) } }, [0, 0, 2])

        // Queryable from the device's history.
        let data = try await run.data("hs1")
        let peerJID = userJID(run.peer).description
        let conversations = try await data.conversations()
        XCTAssertEqual(Set(conversations.map(\.chat)).count, 2)
        XCTAssertTrue(conversations.contains { $0.chat == peerJID && $0.chatLID?.hasSuffix("@lid") == true })
        XCTAssertTrue(conversations.contains { $0.chat.hasSuffix("@g.us") && $0.name == "Simulated group" })
        let dm = try await data.messages(chat: peerJID)
        XCTAssertEqual(dm.compactMap { JSONValue.parse(Data($0.body.utf8))?["text"]?.stringValue },
                       ["see you on Friday", "Friday it is", "hello from Peer One", "hi Peer One, good to hear"], "oldest first")
        XCTAssertEqual(dm.map(\.direction), [.outgoing, .incoming, .incoming, .outgoing])
        XCTAssertTrue(dm.allSatisfy { $0.status == "history" && $0.kind == "text" })
        let count = try await data.historicalMessageCount()
        XCTAssertEqual(count, 7)
        let name = try await data.pushName(for: peerJID)
        XCTAssertEqual(name, "Peer One")

        // WABRIDGE_HISTORY_EVENTS: each stored message as message.received, marked historical.
        try await waitUntil(30, "seven historical message.received") {
            await inbox.of("message.received").filter { $0.data["historical"] == .bool(true) }.count == 7
        }
        let all = await inbox.events
        let problems = try schemaProblems(all)
        XCTAssertEqual(problems, [], "every event validates against its schemas")
        await run.stop()
    }

    func testTheBoundsApplyAcrossChunks() async throws {
        let run = try await link("hs2", me: "15557100011", peer: "15557100012",
                                 history: HistorySettings(bounds: HistoryBounds(maxAge: nil, maxMessages: 3)))
        let data = try await run.data("hs2")
        let count = try await data.historicalMessageCount()
        XCTAssertEqual(count, 3, "the count bound holds after every chunk")
        let dm = try await data.messages(chat: userJID(run.peer).description)
        XCTAssertEqual(dm.compactMap { JSONValue.parse(Data($0.body.utf8))?["text"]?.stringValue },
                       ["hello from Peer One", "hi Peer One, good to hear"], "the newest kept; the older chunk's are pruned")
        let events = await run.rig.inbox.of("history.sync")
        XCTAssertEqual(events.map { $0.data["messages_dropped"]?.numberValue.map { Int($0) } }, [2, 3, 0])
        let historical = await run.rig.inbox.of("message.received").count
        XCTAssertEqual(historical, 0, "no historical message.received unless asked")
        await run.stop()
    }

    /// The device's own settings win over the worker's: here the worker keeps 7 days and
    /// publishes no historical messages, the device asked for no age bound and the events.
    func testTheDevicesOwnSettingsOverrideTheWorkersDefaults() async throws {
        let run = try await link("hs4", me: "15557100031", peer: "15557100032", history: HistorySettings(),
                                 settings: #"{"history":{"days":0,"events":true}}"#)
        let data = try await run.data("hs4")
        let count = try await data.historicalMessageCount()
        XCTAssertEqual(count, 8, "the 30-day-old message is kept too")
        let events = await run.rig.inbox.of("history.sync")
        XCTAssertEqual(events.map { $0.data["messages_dropped"]?.numberValue.map { Int($0) } }, [0, 0, 0])
        try await waitUntil(30, "eight historical message.received") {
            await run.rig.inbox.of("message.received").filter { $0.data["historical"] == .bool(true) }.count == 8
        }
        let stored = try await run.manager.store.registry.device(DeviceID("hs4")).settings
        XCTAssertEqual(stored, #"{"history":{"days":0,"events":true}}"#, "kept in the registry")
        await run.stop()
    }

    /// A media host that alters a history blob: `history.sync` with HISTORY_BLOB_INVALID for that
    /// chunk, the others stored, the device still connected and receiving.
    func testACorruptedBlobIsAnEventAndTheDeviceStaysConnected() async throws {
        let run = try await link("hs3", me: "15557100021", peer: "15557100022", history: HistorySettings()) {
            $0.corruptedHistoryChunk = .recent
        }
        let inbox = run.rig.inbox
        let events = await inbox.of("history.sync")
        let failed = try XCTUnwrap(events.first { $0.data["sync_type"]?.stringValue == "recent" })
        XCTAssertEqual(failed.data["error"]?["code"]?.stringValue, "HISTORY_BLOB_INVALID")
        XCTAssertEqual(failed.data["error"]?["cause"]?.stringValue, "client.media_hash_mismatch")
        XCTAssertEqual(failed.data["messages"]?.numberValue, 0)
        XCTAssertEqual(events.filter { $0.data["error"] == .null }.count, 2)
        let info = try await run.manager.get("hs3")
        XCTAssertEqual(info.state, .connected)
        _ = try await run.rig.h.sim.sendText(from: run.peer, to: userJID(run.me), text: "still there?")
        try await waitUntil(30, "a live message after the bad chunk") { await inbox.count("message.received") == 1 }
        let all = await inbox.events
        let problems = try schemaProblems(all)
        XCTAssertEqual(problems, [], "every event validates against its schemas")
        await run.stop()
    }
}
