import Synchronization

/// The device's own JID, as last written to the registry, kept in memory: every
/// inbound message, receipt and event carries it, and reading `registry.sqlite` for
/// each was a synchronous query on the hottest paths. It changes only where
/// `DeviceActor` calls `registry.setIdentity` (login, logout), which updates both.
final class JIDCache: Sendable {
    private let value: Mutex<String?>

    init(_ jid: String?) { value = Mutex(jid) }

    var jid: String? { value.withLock { $0 } }

    func set(_ jid: String?) { value.withLock { $0 = jid } }
}
