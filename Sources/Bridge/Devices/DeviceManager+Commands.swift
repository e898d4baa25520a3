import BridgeStore
import WAClient

/// A device appeared or went away at run time.
public enum DeviceLifecycleChange: Sendable, Equatable {
    case created
    /// The device is about to go: stop working on it (nothing more may be written
    /// into its folder), keep what waits for it; `created` again if the delete fails.
    case deleting
    case deleted
    /// This worker took the device's lease (workers sharing a store): consume its commands.
    case activated
    /// This worker is about to stop running the device: stop consuming, keep its queue.
    case deactivating
}

/// Called with the device and the change, in order, and awaited before
/// `create`/`delete` return: the command path declares (or deletes) the
/// device's queue here, so a created device can take commands at once.
public typealias DeviceLifecycleObserver = @Sendable (DeviceID, DeviceLifecycleChange) async -> Void

/// What the command path needs from the device manager. A hook instead of
/// `events`: that stream has a single consumer, which is someone else's.
extension DeviceManager {
    public func addLifecycleObserver(_ observer: @escaping DeviceLifecycleObserver) {
        lifecycleObservers.append(observer)
    }

    /// The devices in the map now, sorted.
    public var deviceIDs: [DeviceID] { devices.keys.sorted() }

    public func contains(_ id: DeviceID) -> Bool { devices[id] != nil }

    /// The device's recorded state (kept in memory by its actor); nil for a device that is gone.
    func recordedState(_ id: DeviceID) async -> DeviceState? {
        guard let actor = devices[id] else { return nil }
        return await actor.state  // written through to the registry by the actor, its only writer
    }

    /// The device's running client, if one runs now.
    func commandClient(_ id: DeviceID) async -> WAClient? {
        guard let actor = devices[id] else { return nil }
        return await actor.client
    }

    /// The device's data store (idempotency records).
    func dataStore(_ id: DeviceID) async throws(DeviceError) -> any DeviceDataStoring {
        do { return try await store.device(id).data } catch { throw DeviceError.from(error) }
    }

    /// The device's record of sends not yet recorded (nil: no such device).
    func inFlightSends(_ id: DeviceID) -> InFlightSends? { devices[id]?.inFlight }
}
