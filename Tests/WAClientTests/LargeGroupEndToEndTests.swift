import Foundation
import WABinary
import WAClient
import WASim
import XCTest

/// A LID group of 1,502 devices (301 members: our phone and this client, and 300 phones
/// with four companions each, the companions headless devices with real prekey bundles):
/// one send reaches every device with our sender key, past the 1,024-device bound of a
/// 1:1 stanza, as whatsmeow sends one stanza to all of a group's devices.
final class LargeGroupEndToEndTests: XCTestCase {
    func testSendToAGroupOfFifteenHundredDevices() async throws {
        let harness = try await SimHarness.start()
        let sim = harness.sim
        let store = InMemoryDeviceStore()
        let client = WAClient(store: store, configuration: await harness.configuration(), features: [MessagingFeature(store: store)])
        let me = "15550300001"
        let info = try await within(20) { try await harness.qrLogin(client, phone: me) }
        let others = (0..<300).map { "1555031\(String(format: "%04d", $0))" }
        var companions: [JID] = []
        for number in others {
            await sim.createPhone(number: number)
            companions += try await sim.provisionHeadlessDevices(phone: number, count: 4)
        }
        XCTAssertEqual(companions.count, 1_200)
        try await eventually(10, "prekeys uploaded") { await sim.uploadedPreKeyCount(info.jid) == 812 }
        let group = try await sim.createGroup(creator: others[0], participants: [me] + others, subject: "big")

        let sent = try await within(300) { try await client.sendText(to: group, text: "to everyone") }
        XCTAssertEqual(sent.deviceCount, 300 * 5 + 1, "every device but the sending one gets our sender key")
        XCTAssertGreaterThan(sent.deviceCount, MessageSender.maxDevices)
        // Every device read it: the phones through their agents, each headless companion itself.
        for number in others + [me] {
            try await eventually(60, "\(number) decrypted") {
                await sim.receivedMessages(phone: number).contains { $0.id == sent.id && $0.text == "to everyone" }
            }
        }
        for device in companions {
            try await eventually(30, "\(device) decrypted") { await sim.headlessText(device: device, id: sent.id) == .some("to everyone") }
        }

        // The next send rides the distributed key: skmsg only, and every device still reads it.
        let second = try await within(120) { try await client.sendText(to: group, text: "again") }
        XCTAssertEqual(second.deviceCount, 0)
        for device in companions {
            try await eventually(30, "\(device) read the second") { await sim.headlessText(device: device, id: second.id) == .some("again") }
            let failures = await sim.headlessFailures(device: device)
            XCTAssertEqual(failures, 0)
        }
        await harness.shutdown(client)
    }
}
