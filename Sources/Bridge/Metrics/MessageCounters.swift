import BridgeStore
import Synchronization

/// Messages in and out per device since the process started: inbound when
/// its `message.received` event is recorded, outbound when WhatsApp's server
/// acknowledged it (whatever sent it). `/metrics` exports them; bounded by
/// the number of devices.
public final class MessageCounters: Sendable {
    public struct Counts: Sendable, Equatable {
        public var received: Int = 0
        public var sent: Int = 0
        public init() {}
    }

    private let counts = Mutex<[DeviceID: Counts]>([:])
    /// Devices stopped by an error, by its code (`CLIENT_OUTDATED`, …): bounded by the codes.
    private let errors = Mutex<[String: Int]>([:])

    public init() {}

    func countDeviceError(_ code: String) { errors.withLock { $0[code, default: 0] += 1 } }
    public var deviceErrorSnapshot: [String: Int] { errors.withLock { $0 } }

    func countReceived(_ device: DeviceID) { counts.withLock { $0[device, default: Counts()].received += 1 } }
    func countSent(_ device: DeviceID) { counts.withLock { $0[device, default: Counts()].sent += 1 } }

    public var snapshot: [DeviceID: Counts] { counts.withLock { $0 } }
}
