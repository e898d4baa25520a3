import Foundation
import NIOCore
import Synchronization

/// The messages a WebSocket read that its consumer has not taken yet, with
/// backpressure: once `highWater` are waiting, the channel stops reading from
/// the socket (what the read in progress brings still comes in) (TCP pushes back on the peer), and it reads again when the
/// consumer is down to `lowWater`. A burst (thousands of offline messages after
/// a restart) is then taken at the consumer's pace instead of overflowing a
/// buffer and dropping the link, which made the peer send it all again.
///
/// Written by hand: NIO's `NIOAsyncChannel` does the same but owns the whole
/// pipeline, and the transport needs its own handlers around it.
public final class InboundFlow: Sendable {
    private struct State {
        var chunks: [Data] = []
        var head = 0
        var waiter: CheckedContinuation<Data?, Never>?
        var finished = false
        /// A `read` was held back at the high-water mark.
        var readHeld = false
        /// Most messages ever waiting (diagnostics: above `highWater` only by what one socket read held).
        var peak = 0
        var count: Int { chunks.count - head }
    }
    private let state = Mutex(State())
    private let resumeReading = Mutex<(@Sendable () -> Void)?>(nil)
    let highWater: Int
    let lowWater: Int

    public init(highWater: Int = 256) {
        self.highWater = max(1, highWater)
        lowWater = max(0, self.highWater / 2)
    }

    /// What the consumer iterates; it ends when the link closes (after the buffered messages).
    public var stream: AsyncStream<Data> { AsyncStream(unfolding: { await self.next() }) }

    /// Most messages that were ever waiting for the consumer at once.
    public var peakBuffered: Int { state.withLock { $0.peak } }

    /// How to ask the channel for more once the consumer caught up (set by the handler).
    func onResume(_ resume: (@Sendable () -> Void)?) { resumeReading.withLock { $0 = resume } }

    /// A message from the socket.
    func push(_ data: Data) {
        let waiter = state.withLock { s -> CheckedContinuation<Data?, Never>? in
            guard !s.finished else { return nil }
            if let w = s.waiter {
                s.waiter = nil
                return w
            }
            s.chunks.append(data)
            s.peak = max(s.peak, s.count)
            return nil
        }
        waiter?.resume(returning: data)
    }

    /// The handler asks before each socket read: false holds the read until the consumer caught up.
    func admitRead() -> Bool {
        state.withLock { s in
            if s.count >= highWater {
                s.readHeld = true
                return false
            }
            return true
        }
    }

    /// The link closed: the consumer gets what is buffered, then the end.
    public func finish() {
        let waiter = state.withLock { s -> CheckedContinuation<Data?, Never>? in
            s.finished = true
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(returning: nil)
    }

    func next() async -> Data? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Data?, Never>) in
                let (ready, value, resume) = state.withLock { s -> (Bool, Data?, Bool) in
                    if s.head < s.chunks.count {
                        let d = s.chunks[s.head]
                        s.head += 1
                        if s.head > 64, s.head * 2 >= s.chunks.count {
                            s.chunks.removeFirst(s.head)
                            s.head = 0
                        }
                        var resume = false
                        if s.readHeld, s.count <= lowWater {
                            s.readHeld = false
                            resume = true
                        }
                        return (true, d, resume)
                    }
                    if s.finished || Task.isCancelled { return (true, nil, false) }
                    s.waiter = c
                    return (false, nil, false)
                }
                if resume { resumeReading.withLock { $0 }?() }
                if ready { c.resume(returning: value) }
            }
        } onCancel: {
            finish()
        }
    }
}
