import Foundation

/// How the workers sharing one store split the devices (`OwnershipService`).
public struct OwnershipSettings: Sendable {
    /// This worker's name in the lease table; unique among the workers of one store.
    public var workerID: String
    /// How long a lease lasts unless renewed; renewed every third of it. A worker killed with
    /// -9 has its devices taken over within about `leaseTTL` plus one third of it.
    public var leaseTTL: Duration
    /// Free devices taken per round at most (a worker under its share fills up quickly).
    public var acquireBatch: Int
    /// Devices handed to others per round at most when this worker holds more than its
    /// share: a worker that joins takes its part over several rounds, not in one stampede.
    public var handoverBatch: Int

    public init(workerID: String = OwnershipSettings.defaultWorkerID(), leaseTTL: Duration = .seconds(15),
                acquireBatch: Int = 1000, handoverBatch: Int = 16) {
        self.workerID = workerID
        self.leaseTTL = leaseTTL
        self.acquireBatch = acquireBatch
        self.handoverBatch = handoverBatch
    }

    /// The lease is renewed this often.
    public var renewInterval: Duration { leaseTTL / 3 }

    /// Host name, process id and a random suffix: a restarted worker is a new owner, so its
    /// leases get new generations.
    public static func defaultWorkerID() -> String {
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "worker"
        return "\(host)-\(getpid())-\(UInt32.random(in: 0...UInt32.max) & 0xFFFF)"
    }
}
