import AsyncHTTPClient
import Foundation
import WABinary
import WAClient
import WACrypto
import WAProto
import WASim
import WASignal
import XCTest

/// What the server tells a logged-in client beside messages (`<ib>` children, encrypt and
/// passkey notifications), how the client acks, and the QR form — each against WASim.
final class ServerSignalsTests: XCTestCase {
    private func linked(_ number: String) async throws -> (SimHarness, WAClient, InMemoryDeviceStore, EventLog, JID) {
        let harness = try await SimHarness.start()
        let store = InMemoryDeviceStore()
        let client = await harness.messagingClient(store: store)
        let log = EventLog.watching(client)
        let info = try await within(20) { try await harness.qrLogin(client, phone: number) }
        return (harness, client, store, log, info.jid)
    }

    /// `<ib><dirty type=account_sync timestamp>` is answered with the clean iq (whatsmeow appstate.go
    /// MarkNotDirty); `offline_preview` and `downgrade_webclient` become events; `edge_routing` is kept.
    func testIBChildrenBeyondOffline() async throws {
        let (harness, client, _, log, device) = try await linked("15557770001")
        let sim = harness.sim
        let routing: [UInt8] = [0x08, 0x02, 0x08, 0x05]
        let sent = await sim.sendIB([
            Node("dirty", [Attribute("type", "account_sync"), Attribute("timestamp", "1700000000")]),
            Node("offline_preview", [
                Attribute("count", "7"), Attribute("appdata", "1"), Attribute("message", "3"),
                Attribute("notification", "2"), Attribute("receipt", "1"),
            ]),
            Node("edge_routing", content: .nodes([Node("routing_info", content: .bytes(routing))])),
            Node("downgrade_webclient"),
            Node("something_new"),
        ], to: device)
        XCTAssertTrue(sent)
        try await eventually(5, "dirty bit cleaned") { await sim.dirtyCleaned(by: device) == ["account_sync"] }
        try await eventually(5, "preview and downgrade events") {
            let events = await log.events
            return events.contains(.offlineSyncPreview(OfflineSyncPreview(total: 7, appDataChanges: 1, messages: 3, notifications: 2, receipts: 1)))
                && events.contains(.qrScannedWithoutMultidevice)
        }
        let stored = await client.edgeRoutingInfo
        XCTAssertEqual(stored, Data(routing))
        let state = await client.state
        XCTAssertEqual(state, .connected, "unknown ib children are logged, not fatal")
        let before = await sim.edgeRoutingInfo(receivedFrom: device)
        XCTAssertNil(before, "no routing info before the server gave one")
        // The next connection sends it in the `ED` preamble before the WA header.
        await sim.inject(.dropConnection, device: device)
        try await eventually(10, "routing info sent on reconnect") { await sim.edgeRoutingInfo(receivedFrom: device) == Data(routing) }
        try await client.waitForState(.connected, timeout: .seconds(10))
        await harness.shutdown(client)
    }

    /// The ack of a stanza that names a `recipient` (our phone's copy of what it sent to someone)
    /// carries it, as whatsmeow's sendAck does.
    func testAckCarriesRecipient() async throws {
        let (harness, client, _, log, device) = try await linked("15557770002")
        let sim = harness.sim
        await sim.createPhone(number: "15557770003")
        let id = try await sim.sendText(from: "15557770002", to: user("15557770003"), text: "from my phone")
        try await eventually(5, "own copy received") { await log.received.contains { $0.id == id } }
        try await eventually(5, "message acked") {
            await sim.acks(from: device).contains { $0.string("id") == id && $0.string("class") == "message" }
        }
        let ack = await sim.acks(from: device).first { $0.string("id") == id && $0.string("class") == "message" }
        // The phones are LID-migrated: the copy is addressed by LID, and the ack echoes that.
        let peerLID = await sim.phone("15557770003")?.lid, ownLID = await sim.phone("15557770002")?.lid
        XCTAssertEqual(ack?.jid("recipient"), peerLID)
        XCTAssertEqual(ack?.jid("to"), ownLID)
        await harness.shutdown(client)
    }

    /// `<notification type=encrypt from=user><identity/>` drops every session and identity of that
    /// user and publishes the identity change; the next send opens a fresh session that the peer reads.
    func testIdentityChangeNotificationDropsSessions() async throws {
        let (harness, client, store, log, device) = try await linked("15557770004")
        let sim = harness.sim
        let peer = "15557770005"
        await sim.createPhone(number: peer)
        let first = try await sim.sendText(from: peer, to: user("15557770004"), text: "hi")
        try await eventually(5, "first message") { await log.received.contains { $0.id == first } }
        let record = try await store.loadDevice()
        let signal = try await store.signalStore(for: try XCTUnwrap(record))
        // The peer is LID-migrated: its session lives under its LID; the server names it by number.
        let peerPhone = await sim.phone(peer)
        let peerLID = try XCTUnwrap(peerPhone?.lid)
        let address = SignalAddress(jid: peerLID)
        let before = try await signal.loadSession(for: address)
        XCTAssertNotNil(before, "a session with the peer's phone exists")
        let known = try await signal.identity(for: address)

        let delivered = await sim.sendNotification(Node("notification", [
            Attribute("from", .jid(user(peer))), Attribute("type", "encrypt"), Attribute("id", "3EB0IDCH"),
            Attribute("t", "1700000000"),
        ], content: .nodes([Node("identity")])), to: device)
        XCTAssertTrue(delivered)
        try await eventually(5, "identity change published") {
            await log.events.contains(.identityChanged(IdentityChange(address: address, previousKey: known, newKey: nil)))
        }
        let after = try await signal.loadSession(for: address)
        XCTAssertNil(after, "the session is dropped")
        let identity = try await signal.identity(for: address)
        XCTAssertNil(identity, "the trusted identity is dropped")
        try await eventually(5, "notification acked") {
            await sim.acks(from: device).contains { $0.string("id") == "3EB0IDCH" && $0.string("class") == "notification" }
        }

        let sent = try await client.sendText(to: user(peer), text: "after the change")
        try await eventually(5, "the phone reads the fresh session") {
            await sim.receivedMessages(phone: peer).contains { $0.id == sent.id && $0.text == "after the change" }
        }
        await harness.shutdown(client)
    }

    /// A passkey linking request (whatsmeow pair-passkey.go) is acked and refused with a typed
    /// event, never ignored; the connection stays.
    func testPasskeyPairingRequestIsRefused() async throws {
        let (harness, client, _, log, device) = try await linked("15557770006")
        let delivered = await harness.sim.sendNotification(Node("notification", [
            Attribute("from", .jid(.serverJID)), Attribute("type", "passkey_prologue_request"), Attribute("id", "PK1"),
        ], content: .nodes([Node("passkey_request_options", content: .bytes(Array("{}".utf8)))])), to: device)
        XCTAssertTrue(delivered)
        try await eventually(5, "passkey refused") {
            await log.events.contains { if case .pairingRefused(let code, _) = $0 { code == "client.passkey_unsupported" } else { false } }
        }
        try await eventually(5, "passkey notification acked") { await harness.sim.acks(from: device).contains { $0.string("id") == "PK1" } }
        let state = await client.state
        XCTAssertEqual(state, .connected)
        await harness.shutdown(client)
    }

    /// The client's QR is the wa.me link form by default; the simulated phone parses it on its own
    /// side and refuses a link without the platform or with a broken key.
    func testQRLinkFormIsTheDefaultAndThePhoneChecksIt() async throws {
        let harness = try await SimHarness.start()
        await harness.sim.createPhone(number: "15557770007")
        let client = await harness.client()
        var linked: JID?
        for try await event in await client.loginWithQR() {
            guard case .code(let code) = event, linked == nil else { continue }
            XCTAssertTrue(code.text.hasPrefix("https://wa.me/settings/linked_devices#"), code.text)
            let parts = code.text.split(separator: ",", omittingEmptySubsequences: false)
            XCTAssertEqual(parts.count, 5)
            for bad in [parts.dropLast().joined(separator: ","),
                        ([parts[0], "AAAA"] + parts.dropFirst(2)).joined(separator: ",")] {
                do {
                    _ = try await harness.sim.scanQR(phone: "15557770007", qr: bad)
                    XCTFail("a malformed QR must be refused: \(bad)")
                } catch let error as SimError {
                    XCTAssertEqual(error.code, "sim.bad_qr")
                }
            }
            linked = try await harness.sim.scanQR(phone: "15557770007", qr: code.text)
        }
        XCTAssertNotNil(linked)
        await harness.shutdown(client)
    }

    /// A fresh link gets what a real phone sends: an app-state key share and a history-sync
    /// notification whose blob is on the media host (zlib HistorySync under "WhatsApp History
    /// Keys"). The client decrypts both, acks them and does not publish them as messages.
    func testFreshLinkReceivesKeyShareAndHistorySync() async throws {
        let (harness, client, _, log, device) = try await linked("15557770008")
        let sim = harness.sim
        let sent = await sim.initialSync(sentTo: device)
        let sync = try XCTUnwrap(sent, "the phone sent its initial sync")
        XCTAssertEqual(sync.keys.count, 3)
        XCTAssertTrue(sync.keys.allSatisfy { $0.keyID.keyID.count == 6 && $0.keyData.keyData.count == 32 })
        try await eventually(10, "both peer messages acked and out of the outbox") {
            let acks = await sim.acks(from: device).filter { $0.string("class") == "message" }.compactMap { $0.string("id") }
            let outbox = await sim.outboxCount(device)
            return acks.contains(sync.keyShareID) && acks.contains(sync.historyNotificationID) && outbox == 0
        }
        let published = await log.received.filter { [sync.keyShareID, sync.historyNotificationID].contains($0.id) }
        XCTAssertEqual(published.count, 0, "sync messages are not user messages")
        let undecryptable = await log.events.contains { if case .messageUndecryptable = $0 { true } else { false } }
        XCTAssertFalse(undecryptable)

        // The blob downloads (with hash and mms-type) and decrypts to the history the phone sent.
        let notification = sync.notification
        XCTAssertEqual(notification.syncType, .initialBootstrap)
        let mediaPort = await sim.mediaPort
        let port = try XCTUnwrap(mediaPort)
        let url = "http://127.0.0.1:\(port)\(notification.directPath)"
            + MediaTransfer.downloadQuery(directPath: notification.directPath, fileEncSHA256: notification.fileEncSha256, mmsType: "md-msg-hist")
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(10))
        XCTAssertEqual(response.status.code, 200)
        let body = try await response.body.collect(upTo: 1 << 20)
        let blob = Data(body.readableBytesView)
        XCTAssertEqual(Symmetric.sha256(blob), notification.fileEncSha256)
        let deflated = try MediaCipher.decrypt(blob, keys: MediaKeys(mediaKey: notification.mediaKey, type: .history))
        XCTAssertEqual(Symmetric.sha256(deflated), notification.fileSha256)
        XCTAssertEqual(UInt64(deflated.count), notification.fileLength)
        let inflated = try TransportPayload.decode(Data([TransportPayload.compressedFlag]) + deflated)
        let history = try WAHistorySync_HistorySync(serializedBytes: inflated)
        XCTAssertEqual(history, sync.history)
        XCTAssertEqual(history.syncType, .initialBootstrap)
        XCTAssertEqual(history.nctSalt.count, 32)
        let simPhone = await sim.phone("15557770008")
        let phone = try XCTUnwrap(simPhone)
        XCTAssertTrue(history.phoneNumberToLidMappings.contains { $0.pnJid == phone.jid.description && $0.lidJid == phone.lid.description })
        let names = try XCTUnwrap(sync.chunk(.pushName), "push names come in their own chunk").history
        XCTAssertTrue(names.pushnames.contains { $0.id == phone.jid.description })
        await harness.shutdown(client)
    }
}
