import BridgeStore
import Foundation
import WAClient

/// Why a device stops being this worker's.
public enum OwnershipLoss: Sendable, Equatable {
    /// Given to another worker (rebalancing, SIGTERM): the lease is still ours while the link
    /// closes, then released.
    case handOver
    /// The lease expired or was taken over: another worker may be connected already.
    case lost
}

/// Ownership mode (workers sharing one store): the device manager connects a device only
/// while this worker holds its lease. `OwnershipService` decides which devices; these are
/// the steps, each keeping `owned`, the actors and the command consumers in agreement.
extension DeviceManager {
    var leaseTTL: Duration { configuration.ownership?.leaseTTL ?? .seconds(15) }
    var workerID: String { configuration.ownership?.workerID ?? "" }

    /// The devices this worker holds now (every device without ownership mode).
    public var ownedDeviceIDs: [DeviceID] {
        owned == nil ? devices.keys.sorted() : leases.keys.sorted()
    }

    /// Whether this worker runs the device now (its command queue is consumed only then).
    public func isActive(_ id: DeviceID) -> Bool {
        owned == nil ? devices[id] != nil : leases[id] != nil
    }

    /// Owned devices that may be handed over now: not in the middle of a login.
    func handOverCandidates() async -> [DeviceID] {
        var out: [DeviceID] = []
        for id in leases.keys.sorted() {
            if let a = devices[id], await a.isLoggingIn { continue }
            out.append(id)
        }
        return out
    }

    /// Tries to take a free device now (created here, or asked for through this worker's admin
    /// HTTP); true when this worker holds it afterwards.
    @discardableResult
    func acquireNow(_ id: DeviceID) async -> Bool {
        guard owned != nil else { return true }
        if leases[id] != nil { return true }
        let started = ContinuousClock.now
        do {
            guard let lease = try await store.leases.acquire(id, owner: workerID, ttl: leaseTTL.timeInterval) else { return false }
            try await activate(lease, validUntil: started + leaseTTL, connectAfter: .zero)
            return true
        } catch {
            logger.warning("device not taken", metadata: ["device": "\(id)", "error": "\(error)"])
            return false
        }
    }

    /// Starts running a device whose lease this worker just took: the fence goes up to the
    /// lease's generation first (the previous owner's late key writes are refused from then
    /// on), the actor reopens its keys with that generation, the command consumer starts, and a
    /// logged-in device connects after `connectAfter`.
    public func activate(_ lease: DeviceLease, validUntil: ContinuousClock.Instant, connectAfter: Duration) async throws(DeviceError) {
        guard let owned else { return }
        let id = lease.device
        if devices[id] == nil { devices[id] = try await makeActor(id) }
        let storage: DeviceStorage
        do {
            try await store.raiseFence(id, to: lease.generation)
            storage = try await store.device(id, generation: lease.generation)
        } catch {
            try? await store.leases.release(lease)
            throw DeviceError.from(error)
        }
        guard let actor = devices[id] else { return }
        owned.hold(id, until: validUntil)
        leases[id] = lease
        await actor.takeOwnership(storage)
        for o in lifecycleObservers { await o(id, .activated) }
        // What the device's outbox holds is now this worker's to publish.
        (recorder as? OutboxRecorder)?.wakeups.wake(.device(id))
        logger.info("device taken", metadata: ["device": "\(id)", "generation": "\(lease.generation)"])
        let log = logger
        pendingConnects[id] = Task {
            if connectAfter > .zero { try? await Task.sleep(for: connectAfter) }
            guard !Task.isCancelled, await actor.isLoggedIn(), owned.owns(id) else { return }
            do { try await actor.connect() } catch {
                log.warning("connect after take-over failed", metadata: ["device": "\(id)", "error": "\(error)"])
            }
        }
    }

    /// Renewed leases: each is good until `validUntil` on this worker's clock.
    func extend(_ renewed: [DeviceLease], validUntil: ContinuousClock.Instant) {
        guard let owned else { return }
        for lease in renewed where leases[lease.device]?.generation == lease.generation {
            leases[lease.device] = lease
            owned.hold(lease.device, until: validUntil)
        }
    }

    /// Stops running the device: its consumer stops (sends under way are recorded first), the
    /// link closes, and on a hand-over the lease is released so another worker may take it at
    /// once. A lost lease is not released (it is not ours) and nothing is recorded for it.
    public func dropOwnership(_ id: DeviceID, _ why: OwnershipLoss) async {
        guard let owned, let lease = leases.removeValue(forKey: id) else { return }
        pendingConnects.removeValue(forKey: id)?.cancel()
        if why == .lost { owned.release(id) }
        for o in lifecycleObservers { await o(id, .deactivating) }
        if let actor = devices[id] {
            if why == .lost { await actor.abandon() } else { await actor.handOver() }
            await actor.flushEvents()
        }
        owned.release(id)
        if why == .handOver {
            do { try await store.leases.release(lease) } catch {
                // It expires by itself within the lease time.
                logger.warning("lease not released", metadata: ["device": "\(id)", "code": "\(error.code)"])
            }
        }
        logger.info(why == .lost ? "device lost" : "device handed over", metadata: ["device": "\(id)"])
    }

    /// A device deleted here: its lease row is gone with it.
    func forgetOwnership(_ id: DeviceID) {
        leases.removeValue(forKey: id)
        pendingConnects.removeValue(forKey: id)?.cancel()
        owned?.release(id)
    }

    /// Follows devices created and deleted by other workers: new registry rows get an actor
    /// (idle until leased), rows that are gone lose theirs.
    func syncWithRegistry() async {
        guard owned != nil, let registered = try? await store.listDevices() else { return }
        let ids = Set(registered.map(\.id))
        for id in ids where devices[id] == nil {
            do { devices[id] = try await makeActor(id) } catch {
                logger.warning("device from another worker not loaded", metadata: ["device": "\(id)", "code": "\(error.code)"])
            }
        }
        for (id, actor) in devices where !ids.contains(id) && leases[id] == nil {
            devices[id] = nil
            await actor.abandon()
            actor.retire()
        }
    }
}
