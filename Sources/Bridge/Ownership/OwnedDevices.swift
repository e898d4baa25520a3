import BridgeStore
import Foundation
import Synchronization

/// What this worker may act for right now: the devices whose lease it holds (each until when,
/// on the monotonic clock) and whether it drains the registry outbox. Read without an actor
/// hop by the WhatsApp clients before every stanza and by the event publisher before every
/// window, so a worker whose leases lapsed (paused, cut off from the store) stops at once,
/// before its next renewal round even runs.
public final class OwnedDevices: Sendable {
    private struct State {
        var until: [DeviceID: ContinuousClock.Instant] = [:]
        var drainsRegistry = false
    }
    private let state = Mutex(State())

    public init() {}

    /// True while the device's lease is held and has not run out locally.
    public func owns(_ id: DeviceID) -> Bool {
        state.withLock { s in s.until[id].map { ContinuousClock.now < $0 } ?? false }
    }

    public var drainsRegistry: Bool { state.withLock { $0.drainsRegistry } }

    /// The devices held now (ran out or not).
    public var held: [DeviceID] { state.withLock { Array($0.until.keys) } }

    func hold(_ id: DeviceID, until: ContinuousClock.Instant) { state.withLock { $0.until[id] = until } }
    func release(_ id: DeviceID) { _ = state.withLock { $0.until.removeValue(forKey: id) } }
    func setDrainsRegistry(_ value: Bool) { state.withLock { $0.drainsRegistry = value } }
}
