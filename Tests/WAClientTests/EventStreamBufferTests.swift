import Foundation
import WABinary
@testable import WAClient
import XCTest

/// `events` and `stateChanges` with nobody reading for a while: state, QR, pairing and
/// login never drop; message-like events are bounded by `eventBufferSize`.
final class EventStreamBufferTests: XCTestCase {
    private func undecryptable(_ id: String) -> WAEvent {
        let peer = JID(user: "15550009999", server: JID.userServer)
        return .messageUndecryptable(UndecryptableMessage(
            id: id, chat: peer, sender: peer, error: WAClientError(.messageDecryptFailed, "test"), retryCount: nil))
    }

    /// Twenty pairing codes, each followed by ten message events, into a buffer of four:
    /// every code arrives, in order, and only the newest four message events with them.
    func testImportantEventsSurviveAFloodWithoutAReader() async throws {
        var configuration = WAClientConfiguration()
        configuration.eventBufferSize = 4
        let client = WAClient(store: InMemoryDeviceStore(), configuration: configuration)
        for i in 0..<20 {
            await client.emit(.pairingCode("CODE-\(i)"))
            for j in 0..<10 { await client.emit(undecryptable("m\(i)-\(j)")) }
        }
        await client.emit(.offlineSyncCompleted(count: 99))  // the end marker

        let seen = try await within(10) { () -> [WAEvent] in  // a safety bound: a lost marker would wait forever
            var seen: [WAEvent] = []
            for await e in client.events {
                seen.append(e)
                if case .offlineSyncCompleted = e { break }
            }
            return seen
        }
        let expected: [WAEvent] = (0..<20).map { .pairingCode("CODE-\($0)") }
            + (6..<10).map { undecryptable("m19-\($0)") } + [.offlineSyncCompleted(count: 99)]
        XCTAssertEqual(seen, expected)
    }

    /// The buffer keeps arrival order between kinds: a message event that survives
    /// comes out between the codes it arrived between.
    func testSurvivorsKeepTheirPlaceAmongImportantEvents() async throws {
        var configuration = WAClientConfiguration()
        configuration.eventBufferSize = 2
        let client = WAClient(store: InMemoryDeviceStore(), configuration: configuration)
        await client.emit(.pairingCode("A"))
        await client.emit(undecryptable("1"))
        await client.emit(.pairingCode("B"))
        await client.emit(undecryptable("2"))
        await client.emit(undecryptable("3"))  // the third message event: "1" goes
        await client.emit(.pairingCode("C"))
        let seen = try await within(10) { () -> [WAEvent] in
            var seen: [WAEvent] = []
            for await e in client.events {
                seen.append(e)
                if seen.count == 5 { break }
            }
            return seen
        }
        XCTAssertEqual(seen, [.pairingCode("A"), .pairingCode("B"), undecryptable("2"), undecryptable("3"), .pairingCode("C")])
    }

    /// A whole QR login and a stop with a buffer of one and no reader: every transition
    /// is on `stateChanges`, and `events` has every state, the QR, pairing, login and stop.
    func testNoTransitionOrLoginEventIsLostWithoutAReader() async throws {
        let harness = try await SimHarness.start()
        let client = await harness.client { $0.eventBufferSize = 1 }
        _ = try await within(20) { try await harness.qrLogin(client, phone: "15550007777") }
        try await client.waitForState(.connected, timeout: .seconds(5))
        await client.stop()
        let history = await client.recentTransitions
        XCTAssertGreaterThan(history.count, 1, "more transitions than the buffer holds")

        let transitions = try await within(10) { () -> [StateTransition] in
            var got: [StateTransition] = []
            for await t in client.stateChanges {
                got.append(t)
                if got.count == history.count { break }
            }
            return got
        }
        XCTAssertEqual(transitions, history)

        let events = try await within(10) { () -> [WAEvent] in
            var got: [WAEvent] = []
            for await e in client.events {
                got.append(e)
                if case .stopped = e { break }
            }
            return got
        }
        let states = events.compactMap { if case .state(let t) = $0 { t } else { nil } }
        XCTAssertEqual(states, history)
        XCTAssertTrue(events.contains { if case .qr = $0 { true } else { false } })
        XCTAssertTrue(events.contains { if case .paired = $0 { true } else { false } })
        XCTAssertTrue(events.contains { if case .loggedIn = $0 { true } else { false } })
        await harness.shutdown()
    }
}
