import Synchronization

/// How often a device retries an event its outbox refused: `first`, doubling up to
/// `cap`, for as long as the device lives (`DeviceActor.retire()` ends it).
public struct EventRetryPolicy: Sendable, Equatable {
    public var first: Duration
    public var cap: Duration

    public init(first: Duration = .milliseconds(100), cap: Duration = .seconds(5)) {
        self.first = max(.zero, first)
        self.cap = max(self.first, cap)
    }

    /// The pause after `failures` failed attempts in a row (1 → `first`).
    func delay(afterFailures failures: Int) -> Duration {
        var d = first
        for _ in 1..<max(1, failures) where d < cap { d = d * 2 }
        return min(d, cap)
    }
}

/// The pauses between retries of one device's events, and the signal that ends
/// them: once the device is retired (deleted, or the worker stops), a pause returns
/// at once and a failing event is given up after its current attempt, so
/// `flushEvents()` and the delete or shutdown waiting on it finish.
final class EventRetry: Sendable {
    let policy: EventRetryPolicy
    private struct State {
        var retired = false
        var next = 0
        var sleepers: [Int: (continuation: CheckedContinuation<Void, Never>, timer: Task<Void, Never>?)] = [:]
    }
    private let state = Mutex(State())

    init(policy: EventRetryPolicy) { self.policy = policy }

    var isRetired: Bool { state.withLock { $0.retired } }

    /// Ends every pause now and every later one at once.
    func retire() {
        let sleepers = state.withLock { s in
            s.retired = true
            defer { s.sleepers = [:] }
            return s.sleepers
        }
        for (c, timer) in sleepers.values {
            timer?.cancel()
            c.resume()
        }
    }

    /// Retries are paced again (a delete that failed keeps the device).
    func reinstate() { state.withLock { $0.retired = false } }

    /// Waits `duration`, or less if the device is retired meanwhile.
    func pause(_ duration: Duration) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let key = state.withLock { s -> Int? in
                if s.retired { return nil }
                s.next += 1
                s.sleepers[s.next] = (c, nil)
                return s.next
            }
            guard let key else { return c.resume() }
            let timer = Task { [weak self] in
                try? await Task.sleep(for: duration)
                self?.wake(key)
            }
            let stillWaiting = state.withLock { s -> Bool in
                guard s.sleepers[key] != nil else { return false }
                s.sleepers[key]?.timer = timer
                return true
            }
            if !stillWaiting { timer.cancel() }
        }
    }

    private func wake(_ key: Int) {
        state.withLock { $0.sleepers.removeValue(forKey: key) }?.continuation.resume()
    }
}
