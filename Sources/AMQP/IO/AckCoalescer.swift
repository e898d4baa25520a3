/// Folds a consumer channel's settlements into as few frames as possible.
///
/// The broker numbers deliveries 1, 2, 3… per channel. When the application
/// has acknowledged every delivery up to some tag, one `basic.ack` with
/// `multiple` settles them all; that is what a burst of in-order acks
/// becomes. Acks beyond a gap go out one by one, and nacks and rejects are
/// always sent as they are, after the acks queued before them.
/// Pure value type, owned by the connection thread and tested directly.
struct AckCoalescer {
    enum Frame: Equatable {
        case ack(tag: UInt64, multiple: Bool)
        case nack(tag: UInt64, multiple: Bool, requeue: Bool)
        case reject(tag: UInt64, requeue: Bool)
    }

    /// Every tag below this is settled on the wire (or about to be).
    private(set) var lowestUnsettled: UInt64 = 1
    private var pendingAcks: Set<UInt64> = []
    private var settledAhead: Set<UInt64> = []

    var hasPending: Bool { !pendingAcks.isEmpty }

    /// Records a settlement; returns frames that must go out now (nack and
    /// reject, after flushing the acks queued before them).
    mutating func settle(_ kind: SettleKind, tag: UInt64) -> [Frame] {
        switch kind {
        case .ack(multiple: false):
            if tag >= lowestUnsettled, !settledAhead.contains(tag) { pendingAcks.insert(tag) }
            return []
        case .ack(multiple: true):
            var out = flush()
            guard tag >= lowestUnsettled else { return out }
            out.append(.ack(tag: tag, multiple: true))
            settleThrough(tag)
            return out
        case .nack(let requeue, let multiple):
            var out = flush()
            guard tag >= lowestUnsettled, !settledAhead.contains(tag) else { return out }
            out.append(.nack(tag: tag, multiple: multiple, requeue: requeue))
            if multiple { settleThrough(tag) } else { markSettled(tag) }
            return out
        case .reject(let requeue):
            var out = flush()
            guard tag >= lowestUnsettled, !settledAhead.contains(tag) else { return out }
            out.append(.reject(tag: tag, requeue: requeue))
            markSettled(tag)
            return out
        }
    }

    /// The frames for every ack recorded so far.
    mutating func flush() -> [Frame] {
        guard !pendingAcks.isEmpty else { return [] }
        var top: UInt64?
        while true {
            if pendingAcks.remove(lowestUnsettled) != nil {
                top = lowestUnsettled
                lowestUnsettled += 1
            } else if settledAhead.remove(lowestUnsettled) != nil {
                lowestUnsettled += 1
            } else {
                break
            }
        }
        var out: [Frame] = []
        if let top { out.append(.ack(tag: top, multiple: true)) }
        for tag in pendingAcks.sorted() {
            out.append(.ack(tag: tag, multiple: false))
            settledAhead.insert(tag)
        }
        pendingAcks.removeAll()
        return out
    }

    private mutating func markSettled(_ tag: UInt64) {
        if tag == lowestUnsettled {
            lowestUnsettled += 1
            while settledAhead.remove(lowestUnsettled) != nil { lowestUnsettled += 1 }
        } else {
            settledAhead.insert(tag)
        }
    }

    private mutating func settleThrough(_ tag: UInt64) {
        lowestUnsettled = max(lowestUnsettled, tag + 1)
        pendingAcks = pendingAcks.filter { $0 > tag }
        settledAhead = settledAhead.filter { $0 > tag }
        while settledAhead.remove(lowestUnsettled) != nil { lowestUnsettled += 1 }
    }
}
