import Synchronization

/// Hands items over in batches: once at least one has come, all that have come
/// (up to a bound), in order. The command path uses it twice: a pump task reads
/// a consumer's deliveries into one, so a device sees what the broker
/// prefetched instead of one delivery per wake-up; and a run's server acks go
/// through one to be recorded as they come, several per transaction.
final class BatchBuffer<Element: Sendable>: Sendable {
    private struct State {
        var items: [Element] = []
        var end: Result<Void, any Error>?
        var waiter: CheckedContinuation<Void, Never>?
    }
    private let state = Mutex(State())

    func push(_ d: Element) { wake { $0.items.append(d) } }

    /// The stream ended (nil: cleanly; else its error, thrown once the items are taken).
    func finish(_ error: (any Error)?) { wake { $0.end = error.map { .failure($0) } ?? .success(()) } }

    private func wake(_ change: (inout State) -> Void) {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            change(&s)
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume()
    }

    /// The next batch (at most `max`); nil once the stream ended and everything was taken.
    /// Throws the stream's error, or `CancellationError` when the task is cancelled.
    func next(max: Int) async throws -> [Element]? {
        while true {
            try Task.checkCancellation()
            let taken = state.withLock { s -> Result<[Element]?, any Error>? in
                if !s.items.isEmpty {
                    let n = min(max, s.items.count)
                    defer { s.items.removeFirst(n) }
                    return .success(Array(s.items.prefix(n)))
                }
                switch s.end {
                case .success: return .success(nil)
                case .failure(let e): return .failure(e)
                case nil: return nil
                }
            }
            if let taken { return try taken.get() }
            await withTaskCancellationHandler {
                await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                    let ready = state.withLock { s -> Bool in
                        if !s.items.isEmpty || s.end != nil || Task.isCancelled { return true }
                        s.waiter = c
                        return false
                    }
                    if ready { c.resume() }
                }
            } onCancel: {
                wake { _ in }
            }
        }
    }
}
