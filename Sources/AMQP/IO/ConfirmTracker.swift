/// Publisher-confirm bookkeeping for one confirm-mode channel.
///
/// The broker numbers publishes 1, 2, 3… per channel and answers with
/// `basic.ack`/`basic.nack`, possibly `multiple` (everything up to a tag).
/// Pure value type: the connection thread owns it, tests drive it directly.
struct ConfirmTracker<Entry> {
    private(set) var nextSeq: UInt64 = 1
    private var pending: [UInt64: Entry] = [:]
    private var lowest: UInt64 = 1

    var count: Int { pending.count }
    var isEmpty: Bool { pending.isEmpty }

    /// Records a publish just written; returns its sequence number.
    mutating func register(_ entry: Entry) -> UInt64 {
        let seq = nextSeq
        pending[seq] = entry
        nextSeq += 1
        return seq
    }

    /// Removes and returns, in publish order, the entries a confirm covers.
    /// Unknown or repeated tags are ignored rather than trusted.
    mutating func settle(tag: UInt64, multiple: Bool) -> [Entry] {
        var out: [Entry] = []
        if multiple {
            guard tag >= lowest else { return out }
            let upper = min(tag, nextSeq - 1)
            if upper >= lowest {
                for seq in lowest...upper {
                    if let e = pending.removeValue(forKey: seq) { out.append(e) }
                }
                lowest = upper + 1
            }
        } else if let e = pending.removeValue(forKey: tag) {
            out.append(e)
        }
        while lowest < nextSeq, pending[lowest] == nil { lowest += 1 }
        return out
    }

    func entry(_ seq: UInt64) -> Entry? { pending[seq] }

    mutating func update(_ seq: UInt64, _ body: (inout Entry) -> Void) {
        if var e = pending[seq] {
            body(&e)
            pending[seq] = e
        }
    }

    /// Everything still unconfirmed, in publish order; numbering restarts at 1
    /// (a new channel starts a new sequence).
    mutating func reset() -> [Entry] {
        let out = pending.keys.sorted().compactMap { pending[$0] }
        pending = [:]
        nextSeq = 1
        lowest = 1
        return out
    }
}
