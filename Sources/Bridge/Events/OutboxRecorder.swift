import BridgeStore
import Foundation
import Synchronization

extension EventRecording {
    /// Records `device.deleted` for a device whose folder is about to be
    /// removed. The outbox recorder also moves the device's unpublished events
    /// out of the folder first; other recorders just record the event.
    public func recordDeletion(_ event: CloudEvent) async throws {
        if let outbox = self as? OutboxRecorder {
            try await outbox.retire(event)
        } else {
            try await record(event)
        }
    }
}

/// The `EventRecording` of the bridge: writes each event (its structured-mode
/// document, routing key and id) into an outbox in SQLite, durable when
/// `record` returns, and wakes the `EventPublisher`.
///
/// Device events go to the device's own `history.sqlite` outbox. `device.created`
/// and `device.deleted` go to the registry's outbox, which survives the device
/// folder; the publisher drains a device's own outbox only once the registry
/// holds nothing of that device, so `device.created` comes first.
public final class OutboxRecorder: EventRecording {
    public let store: BridgeStore
    let wakeups: Wakeups

    public init(store: BridgeStore) {
        self.store = store
        wakeups = Wakeups()
    }

    public func record(_ event: CloudEvent) async throws {
        let payload = event.encoded()
        switch event.type {
        case .deviceCreated, .deviceDeleted:
            if event.type == .deviceCreated { wakeups.reinstate(event.deviceID) }
            try await store.registry.appendEvents([Self.registryRow(event, payload: payload)])
            wakeups.wake(.registry)
        default:
            guard let data = try await deviceData(event.deviceID) else {
                // An event about no device (a command routed to an unknown device ID is
                // refused): there is no device outbox, the registry's holds it.
                try await store.registry.appendEvents([Self.registryRow(event, payload: payload)])
                wakeups.wake(.registry)
                return
            }
            try await data.appendEvent(eventID: event.id, routingKey: event.routingKey, payload: payload, now: event.time)
            wakeups.wake(.device(event.deviceID))
        }
    }

    /// One device's events go into its outbox in one transaction; any other mix
    /// (registry events, several devices) one by one.
    public func record(contentsOf events: [CloudEvent]) async throws {
        guard let first = events.first else { return }
        let device = first.deviceID
        guard events.count > 1,
              events.allSatisfy({ $0.deviceID == device && $0.type != .deviceCreated && $0.type != .deviceDeleted }) else {
            for event in events { try await record(event) }
            return
        }
        guard let data = try await deviceData(device) else {
            for event in events { try await record(event) }  // no device outbox: the registry's
            return
        }
        try await data.appendEvents(events.map {
            NewOutboxEvent(eventID: $0.id, routingKey: $0.routingKey, payload: $0.encoded(), createdAt: $0.time)
        })
        wakeups.wake(.device(device))
    }

    /// The device's data store; nil when there is no such device.
    private func deviceData(_ id: DeviceID) async throws(StoreError) -> (any DeviceDataStoring)? {
        do { return try await store.device(id).data } catch {
            if error.code == .notFound { return nil }
            throw error
        }
    }

    /// The registry-outbox row of an event that must not live in a device folder.
    private static func registryRow(_ event: CloudEvent, payload: Data) -> RegistryOutboxEvent {
        RegistryOutboxEvent(eventID: event.id, deviceID: event.deviceID.rawValue, routingKey: event.routingKey,
                            payload: payload, createdAt: event.time)
    }

    /// Moves what the device's outbox still holds, then `deleted`, into the
    /// registry's outbox (one transaction, order kept), before the folder goes.
    /// The device's publisher lane is stopped first (after the window it has in
    /// flight), so nothing is published from both places.
    func retire(_ deleted: CloudEvent) async throws {
        await wakeups.retire(deleted.deviceID)
        do { try await moveToRegistry(deleted) } catch {
            wakeups.reinstate(deleted.deviceID)  // the device stays: so does its lane
            throw error
        }
        wakeups.wake(.registry)
    }

    private func moveToRegistry(_ deleted: CloudEvent) async throws {
        var moved: [RegistryOutboxEvent] = []
        // A device folder that cannot be opened now must not be skipped: its events would go with it.
        var device: DeviceStorage?
        do { device = try await store.device(deleted.deviceID) } catch {
            if error.code != .notFound { throw error }
        }
        if let data = device?.data {
            // All of it in one read: every row is kept in `moved` anyway.
            moved = try await data.peekEvents(limit: .max).map {
                RegistryOutboxEvent(eventID: $0.eventID, deviceID: deleted.deviceID.rawValue, routingKey: $0.routingKey,
                                    payload: $0.payload, createdAt: $0.createdAt)
            }
        }
        moved.append(Self.registryRow(deleted, payload: deleted.encoded()))
        try await store.registry.appendEvents(moved)
    }
}

/// Which outbox has news.
enum OutboxKey: Sendable, Hashable {
    case registry
    case device(DeviceID)
}

/// Hands "this outbox has news" from recorders to the publisher; coalesces
/// wakes (the publisher reads the outbox anyway) and drops them while no
/// publisher listens (it reads every outbox when it starts).
///
/// It also keeps a device's lane and the deletion of that device apart: a lane
/// publishes a window only while the device is not being retired, and
/// `retire` waits for the window in flight.
final class Wakeups: Sendable {
    private let sink = Mutex<AsyncStream<OutboxKey>.Continuation?>(nil)
    private let lanes = Mutex<(busy: Set<DeviceID>, retired: Set<DeviceID>)>(([], []))

    /// False when the device is retired (its lane ends); otherwise the window may go.
    func beginWindow(_ id: DeviceID) -> Bool {
        lanes.withLock { l in
            if l.retired.contains(id) { return false }
            l.busy.insert(id)
            return true
        }
    }

    func endWindow(_ id: DeviceID) { _ = lanes.withLock { $0.busy.remove(id) } }

    /// Stops the device's lane: no new window starts; returns once none is in flight.
    func retire(_ id: DeviceID) async {
        lanes.withLock { _ = $0.retired.insert(id) }
        while lanes.withLock({ $0.busy.contains(id) }) {
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    /// A device created again under a retired id gets a lane again.
    func reinstate(_ id: DeviceID) { _ = lanes.withLock { $0.retired.remove(id) } }

    func wake(_ key: OutboxKey) {
        _ = sink.withLock { $0 }?.yield(key)
    }

    /// A new stream of wakes; replaces (and finishes) the previous listener's.
    func listen() -> AsyncStream<OutboxKey> {
        let (stream, continuation) = AsyncStream.makeStream(of: OutboxKey.self, bufferingPolicy: .bufferingNewest(65_536))
        let old = sink.withLock { s in
            let o = s
            s = continuation
            return o
        }
        old?.finish()
        return stream
    }

    func stopListening() {
        sink.withLock { s in
            s?.finish()
            s = nil
        }
    }
}
