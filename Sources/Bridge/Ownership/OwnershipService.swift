import BridgeStore
import Foundation
import Logging
import ServiceLifecycle

/// Splits the devices of a shared store among the live workers, one owner per device.
///
/// Every `renewInterval` (a third of the lease time) a round: say this worker is alive,
/// renew its leases (one that did not renew is lost: its device stops at once, recording
/// nothing), follow devices created or deleted elsewhere, then move towards an even share
/// (`ceil(devices / live workers)`): take free devices (none leased, expired, released) up
/// to the share, or, holding more than the share while another worker holds less, hand a
/// few over (`handoverBatch` per round, so a new worker fills up without a stampede).
/// Two workers never run one device: the store hands a lease to one of them, a device is
/// connected only after its fence was raised to the new lease's generation, and a worker
/// whose leases ran out (paused, cut off from the store) is stopped by `OwnedDevices`
/// before its next round. At graceful shutdown the worker says it is draining and hands
/// every device over; the others take them at their next round instead of after the lease time.
///
/// Written by hand: the lease rules are ours (see docs/architecture.md, "Many workers").
public struct OwnershipService: Service {
    private let manager: DeviceManager
    private let settings: OwnershipSettings
    private let logger: Logger

    public init(manager: DeviceManager, settings: OwnershipSettings, logger: Logger = Logger(label: "wabridge.ownership")) {
        self.manager = manager
        self.settings = settings
        var l = logger
        l[metadataKey: "worker"] = .string(settings.workerID)
        self.logger = l
    }

    /// The pause between rounds while this worker fills up to its share.
    static let fillPause: Duration = .milliseconds(250)

    public func run() async throws {
        while !(await manager.isReady) {
            if Task.isShuttingDownGracefully { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        let rounds = OwnershipRounds(manager: manager, settings: settings, logger: logger)
        logger.info("ownership rounds start", metadata: ["lease_ttl_s": "\(settings.leaseTTL.timeInterval)"])
        while !Task.isShuttingDownGracefully {
            // Still under its share with free devices left (a start with thousands of devices,
            // `acquireBatch` per round): the next batch is taken soon, not a renew interval later.
            let pause = await rounds.round() ? Self.fillPause : settings.renewInterval
            do { try await cancelWhenGracefulShutdown { try await Task.sleep(for: pause) } } catch { break }
        }
        await rounds.drain()
    }
}

/// The state of the rounds (one task runs them).
actor OwnershipRounds {
    private let manager: DeviceManager
    private let settings: OwnershipSettings
    private let logger: Logger
    private let leases: any LeaseStoring
    /// Until when the last successful renewal holds, on this worker's clock.
    private var renewedUntil: ContinuousClock.Instant?

    init(manager: DeviceManager, settings: OwnershipSettings, logger: Logger) {
        self.manager = manager
        self.settings = settings
        self.logger = logger
        leases = manager.store.leases
    }

    private var ttl: TimeInterval { settings.leaseTTL.timeInterval }

    /// One round: heartbeat, renew, follow the registry, rebalance. True when it took a full
    /// batch of free devices and is still under its share (more are waiting).
    @discardableResult
    func round() async -> Bool {
        let started = ContinuousClock.now
        // A lease counts as ours locally a little less long than in the store: the store's
        // clock started the lease after we asked.
        let validUntil = started + settings.leaseTTL * 0.9
        do {
            try await leases.heartbeat(worker: settings.workerID, ttl: ttl, draining: false)
            let held = try await leases.renew(owner: settings.workerID, ttl: ttl)
            renewedUntil = validUntil
            let heldIDs = Set(held.map(\.device))
            for id in await manager.ownedDeviceIDs where !heldIDs.contains(id) {
                logger.warning("lease lost", metadata: ["device": "\(id)"])
                await manager.dropOwnership(id, .lost)
            }
            await manager.extend(held, validUntil: validUntil)
            await manager.syncWithRegistry()
            let more = try await rebalance(started: started)
            let took = ContinuousClock.now - started
            // A round that takes a good part of the lease time puts every lease at risk: said loudly.
            if took > settings.renewInterval {
                logger.warning("ownership round slow", metadata: ["ms": "\(Int(took.timeInterval * 1000))", "held": "\(held.count)"])
            }
            return more
        } catch {
            logger.error("ownership round failed", metadata: ["error": "\(error)"])
            // Cut off from the store past our leases: another worker may take them now.
            if let renewedUntil, ContinuousClock.now >= renewedUntil {
                for id in await manager.ownedDeviceIDs { await manager.dropOwnership(id, .lost) }
            }
            return false
        }
    }

    private func rebalance(started: ContinuousClock.Instant) async throws -> Bool {
        let workers = try await leases.liveWorkers(forgetAfter: 3600).filter { !$0.draining }
        let live = max(1, workers.count)
        // The registry outbox has one drainer: the first live worker by name.
        let drains = workers.first?.id == settings.workerID
        if manager.owned?.drainsRegistry != drains {
            manager.owned?.setDrainsRegistry(drains)
            if drains { (manager.recorder as? OutboxRecorder)?.wakeups.wake(.registry) }
        }
        let all = await manager.deviceIDs
        let share = (all.count + live - 1) / live
        let mine = await manager.ownedDeviceIDs
        let rows = try await leases.leases()
        let now = try await leases.now()
        let liveRows = rows.filter { $0.isLive(at: now) }
        if mine.count < share {
            let taken = Set(liveRows.map(\.device))
            // Each worker prefers different free devices (its own hash order), so workers
            // filling up at once rarely ask for the same one.
            let free = all.filter { !taken.contains($0) }.sorted { preference($0) < preference($1) }
            let asked = min(share - mine.count, settings.acquireBatch)
            // Taking a device (its lease, its fence, its keys reopened) costs a few store writes:
            // thousands take longer than a lease lives. So each lease counts from its own take,
            // and a round stops taking at half the renew interval; the next round (soon, see
            // `fillPause`) renews what it holds first, then takes more. As many takes run at once as
            // the store serves well (`parallelAcquires`).
            let clock = ContinuousClock()
            let stopTaking = clock.now + settings.renewInterval / 2
            // Their connects are spread over a renew interval, not all at once.
            let spread = settings.renewInterval
            let (leases, manager, settings, logger, ttl) = (self.leases, self.manager, self.settings, self.logger, self.ttl)
            let candidates = Array(free.prefix(asked))
            var got = 0
            var stoppedEarly = false
            try await withThrowingTaskGroup(of: Bool?.self) { group in
                var next = 0
                func add() {
                    let (index, id) = (next, candidates[next])
                    next += 1
                    group.addTask {
                        // nil: the round's time was up before this one started.
                        guard clock.now < stopTaking else { return nil }
                        let takenAt = clock.now
                        guard let lease = try await leases.acquire(id, owner: settings.workerID, ttl: ttl) else { return false }
                        let after = asked > 1 ? spread * (Double(index) / Double(asked)) : .zero
                        do throws(DeviceError) {
                            try await manager.activate(lease, validUntil: takenAt + settings.leaseTTL * 0.9, connectAfter: after)
                        } catch {
                            logger.warning("taken device not started", metadata: ["device": "\(lease.device)", "code": "\(error.code)"])
                        }
                        return true
                    }
                }
                while next < min(max(1, leases.parallelAcquires), candidates.count) { add() }
                while let result = try await group.next() {
                    switch result {
                    case nil: stoppedEarly = true
                    case true?: got += 1
                    case false?: break
                    }
                    if next < candidates.count, !stoppedEarly { add() }
                }
            }
            if got > 0 {
                logger.info("devices taken", metadata: [
                    "count": "\(got)", "share": "\(share)", "ms": "\(Int((clock.now - started).timeInterval * 1000))",
                ])
            }
            return stoppedEarly || (asked == settings.acquireBatch && free.count > asked)
        } else if mine.count > share {
            // Hand over only when some live worker is below its share (it will take them).
            var perOwner: [String: Int] = [:]
            for r in liveRows { perOwner[r.owner, default: 0] += 1 }
            let someoneShort = workers.contains { $0.id != settings.workerID && perOwner[$0.id, default: 0] < share }
            guard someoneShort else { return false }
            let candidates = await manager.handOverCandidates().sorted { preference($0) > preference($1) }
            let give = candidates.prefix(min(mine.count - share, settings.handoverBatch))
            for id in give { await manager.dropOwnership(id, .handOver) }
            if !give.isEmpty { logger.info("devices handed over", metadata: ["count": "\(give.count)", "share": "\(share)"]) }
        }
        return false
    }

    /// A stable per-worker order of devices.
    private func preference(_ id: DeviceID) -> Int {
        var h = Hasher()
        h.combine(settings.workerID)
        h.combine(id)
        return h.finalize()
    }

    /// Graceful shutdown: say so (this worker no longer counts for shares), hand every device
    /// over, and leave the worker table.
    func drain() async {
        try? await leases.heartbeat(worker: settings.workerID, ttl: ttl, draining: true)
        let mine = await manager.ownedDeviceIDs
        for id in mine { await manager.dropOwnership(id, .handOver) }
        manager.owned?.setDrainsRegistry(false)
        try? await leases.heartbeat(worker: settings.workerID, ttl: 0, draining: true)
        logger.info("devices handed over for shutdown", metadata: ["count": "\(mine.count)"])
    }
}
