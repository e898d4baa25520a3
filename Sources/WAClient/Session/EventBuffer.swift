import Synchronization

/// The buffer behind `WAClient.events`: in order, lossless for the kinds a consumer
/// must never miss (state, QR, pairing, login, logout, stop), bounded for the
/// high-volume kinds (messages, receipts, identity changes): beyond `limit` of those
/// waiting, the oldest of them is dropped (the important ones around it stay).
///
/// Like an `AsyncStream`: `finish()` lets a consumer read what is buffered and then
/// ends; a consumer's task being cancelled ends the stream for good and empties it.
final class EventBuffer<Element: Sendable>: Sendable {
    /// A queue of (arrival number, element); two of them merge back into arrival order.
    private struct Queue {
        private var items: [(seq: Int, element: Element)] = []
        private var head = 0

        var count: Int { items.count - head }
        var frontSeq: Int? { head < items.count ? items[head].seq : nil }

        mutating func append(_ seq: Int, _ e: Element) { items.append((seq, e)) }

        mutating func popFirst() -> Element? {
            guard head < items.count else { return nil }
            let e = items[head].element
            head += 1
            // Forget consumed slots once they are the larger half (amortised O(1)).
            if head > 32, head * 2 >= items.count {
                items.removeFirst(head)
                head = 0
            }
            return e
        }

        mutating func removeAll() {
            items = []
            head = 0
        }
    }

    private struct State {
        var important = Queue()
        var bulk = Queue()
        var seq = 0
        var waiters: [CheckedContinuation<Element?, Never>] = []
        var finished = false
        var terminated = false

        mutating func pop() -> Element? {
            switch (important.frontSeq, bulk.frontSeq) {
            case (nil, nil): return nil
            case (.some, nil): return important.popFirst()
            case (nil, .some): return bulk.popFirst()
            case (.some(let a), .some(let b)): return a < b ? important.popFirst() : bulk.popFirst()
            }
        }
    }

    private let state = Mutex(State())
    private let limit: Int
    private let isDroppable: @Sendable (Element) -> Bool

    init(limit: Int, isDroppable: @escaping @Sendable (Element) -> Bool) {
        self.limit = max(1, limit)
        self.isDroppable = isDroppable
    }

    /// The consumer side, as the `AsyncStream` the client hands out.
    var stream: AsyncStream<Element> {
        AsyncStream(unfolding: { await self.next() })
    }

    /// Appends `element`, or hands it to a waiting consumer. Returns true when an older
    /// droppable element had to go to keep the bound.
    @discardableResult
    func append(_ element: Element) -> Bool {
        let droppable = isDroppable(element)
        let (waiter, dropped) = state.withLock { s -> (CheckedContinuation<Element?, Never>?, Bool) in
            if s.finished || s.terminated { return (nil, false) }
            if !s.waiters.isEmpty { return (s.waiters.removeFirst(), false) }
            s.seq += 1
            guard droppable else {
                s.important.append(s.seq, element)
                return (nil, false)
            }
            s.bulk.append(s.seq, element)
            guard s.bulk.count > limit else { return (nil, false) }
            _ = s.bulk.popFirst()
            return (nil, true)
        }
        waiter?.resume(returning: element)
        return dropped
    }

    /// No more elements: consumers read what is buffered, then the stream ends.
    func finish() {
        let waiters = state.withLock { s in
            s.finished = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.resume(returning: nil) }
    }

    /// The next element; nil once finished and drained, or terminated.
    func next() async -> Element? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Element?, Never>) in
                let ready = state.withLock { s -> (Bool, Element?) in
                    if s.terminated { return (true, nil) }
                    if let e = s.pop() { return (true, e) }
                    if s.finished { return (true, nil) }
                    s.waiters.append(c)
                    return (false, nil)
                }
                if ready.0 { c.resume(returning: ready.1) }
            }
        } onCancel: {
            terminate()
        }
    }

    /// The consumer went away (its task was cancelled): nothing more is kept.
    private func terminate() {
        let waiters = state.withLock { s in
            s.terminated = true
            s.important.removeAll()
            s.bulk.removeAll()
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.resume(returning: nil) }
    }
}
