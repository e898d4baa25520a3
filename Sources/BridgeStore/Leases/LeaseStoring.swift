import Foundation

/// One worker's hold on one device: while it is live (`expiresAt` in the future, by the
/// store's clock) no other worker may connect the device. `generation` grows by one each
/// time the device changes hands and is never reused: it is the fencing token the new
/// owner raises the device's key store to (`BridgeStore.raiseFence`).
public struct DeviceLease: Sendable, Equatable, Hashable {
    public var device: DeviceID
    public var owner: String
    public var generation: Int64
    public var expiresAt: Date

    public init(device: DeviceID, owner: String, generation: Int64, expiresAt: Date) {
        self.device = device
        self.owner = owner
        self.generation = generation
        self.expiresAt = expiresAt
    }

    public func isLive(at now: Date) -> Bool { expiresAt > now }
}

/// A worker that said it is alive (`heartbeat`) within its time to live.
public struct WorkerRecord: Sendable, Equatable {
    public var id: String
    public var expiresAt: Date
    /// Handing its devices over (SIGTERM): it takes no new ones and does not count for shares.
    public var draining: Bool

    public init(id: String, expiresAt: Date, draining: Bool) {
        self.id = id
        self.expiresAt = expiresAt
        self.draining = draining
    }
}

/// Device leases and worker heartbeats, kept in the shared store so that every worker sees
/// the same table. Each call is one transaction: two workers asking for the same device at
/// once get one lease between them.
public protocol LeaseStoring: Sendable {
    /// Takes the device for `owner` unless another owner's lease is live. A lease that changes
    /// hands (none before, expired, released) gets the next generation; `owner`'s own live
    /// lease is extended with its generation kept. nil: someone else holds it.
    /// A lease taken from an expired or released one also records the device `disconnected` in
    /// the same transaction when it was connecting, connected or reconnecting: that was the
    /// previous owner's link, and a reader must not see it as the new owner's before it connects.
    func acquire(_ device: DeviceID, owner: String, ttl: TimeInterval) async throws(StoreError) -> DeviceLease?

    /// Extends every live lease of `owner` and returns them: a lease of ours missing from the
    /// answer expired or was taken over, and its device must be closed.
    func renew(owner: String, ttl: TimeInterval) async throws(StoreError) -> [DeviceLease]

    /// Gives the lease up at once (its generation stays, so the next owner's is higher); does
    /// nothing if the lease is no longer this one.
    func release(_ lease: DeviceLease) async throws(StoreError)

    /// Every lease row, live or not.
    func leases() async throws(StoreError) -> [DeviceLease]

    /// Records that `worker` is alive for `ttl` more seconds.
    func heartbeat(worker: String, ttl: TimeInterval, draining: Bool) async throws(StoreError)

    /// Workers whose heartbeat is live; rows dead for longer than `forgetAfter` are removed.
    func liveWorkers(forgetAfter: TimeInterval) async throws(StoreError) -> [WorkerRecord]

    /// The store's clock (leases expire by it, not by a worker's).
    func now() async throws(StoreError) -> Date

    /// How many `acquire` calls a worker usefully runs at once: several for a database server
    /// (each is a few round trips), one for a file with a single writer.
    var parallelAcquires: Int { get }
}
