import Foundation
import Synchronization

/// The WhatsApp message ids one device's command pipeline has written to the
/// link but not yet recorded (idempotency row and `sent` event). A receipt for
/// one of them waits here before its `message.status` is recorded, so the
/// event carries the command's id and correlation id and follows `sent` in the
/// outbox. The wait is bounded: a pipeline that never settles (a bug, a store
/// that stays down) delays a receipt by `limit` at most, it never loses it.
final class InFlightSends: Sendable {
    private struct Waiter {
        let token: UInt64
        let continuation: CheckedContinuation<Void, Never>
    }
    private struct State {
        var ids: [String: Int] = [:]
        var waiters: [String: [Waiter]] = [:]
        var nextToken: UInt64 = 0
    }
    private let state = Mutex(State())
    let limit: Duration

    init(limit: Duration = .seconds(30)) { self.limit = limit }

    /// Marks ids as written and not yet recorded (counted: the same id may be begun twice).
    func begin(_ ids: [String]) {
        state.withLock { s in for id in ids { s.ids[id, default: 0] += 1 } }
    }

    /// The ids are recorded (or given up): their waiting receipts go on.
    func end(_ ids: [String]) {
        let woken = state.withLock { s -> [Waiter] in
            var out: [Waiter] = []
            for id in ids {
                guard let n = s.ids[id] else { continue }
                if n > 1 { s.ids[id] = n - 1; continue }
                s.ids[id] = nil
                out += s.waiters.removeValue(forKey: id) ?? []
            }
            return out
        }
        for w in woken { w.continuation.resume() }
    }

    func isInFlight(_ id: String) -> Bool { state.withLock { $0.ids[id] != nil } }

    /// Returns once `id` is not in flight, or after `limit`.
    func settled(_ id: String) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let token = state.withLock { s -> UInt64? in
                guard s.ids[id] != nil else { return nil }
                s.nextToken += 1
                s.waiters[id, default: []].append(Waiter(token: s.nextToken, continuation: c))
                return s.nextToken
            }
            guard let token else { return c.resume() }
            let limit = self.limit
            Task { [weak self] in
                try? await Task.sleep(for: limit)
                self?.giveUp(id, token: token)
            }
        }
    }

    private func giveUp(_ id: String, token: UInt64) {
        let waiter = state.withLock { s -> Waiter? in
            guard var list = s.waiters[id], let i = list.firstIndex(where: { $0.token == token }) else { return nil }
            let w = list.remove(at: i)
            s.waiters[id] = list.isEmpty ? nil : list
            return w
        }
        waiter?.continuation.resume()
    }
}
