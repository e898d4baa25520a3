/// Send pacing for one device: `rate` tokens per second refill a bucket of
/// `burst` tokens; every send takes one. Over the limit a send waits for its
/// token, it is never dropped. The clock is passed in (`now`, any monotonic
/// origin) so tests drive time by hand.
public struct TokenBucket: Sendable, Equatable {
    public let rate: Double
    public let burst: Double
    private var tokens: Double
    private var last: Duration?

    /// `rate` > 0 tokens per second, `burst` ≥ 1; the bucket starts full.
    public init(rate: Double, burst: Int) {
        self.rate = max(rate, 0.001)
        self.burst = Double(max(burst, 1))
        tokens = self.burst
    }

    /// Takes a token at `now` and returns how long the caller must wait before
    /// sending (zero when a token was there). The token is reserved at once,
    /// so successive calls queue up behind each other.
    public mutating func reserve(now: Duration) -> Duration {
        refill(now: now)
        tokens -= 1
        if tokens >= 0 { return .zero }
        return .nanoseconds(Int64((-tokens / rate * 1e9).rounded(.up)))
    }

    /// Takes a token only when one is there now (no waiting); false leaves the bucket as it was.
    public mutating func take(now: Duration) -> Bool {
        refill(now: now)
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }

    private mutating func refill(now: Duration) {
        if let last {
            let elapsed = Double((now - last).components.seconds) + Double((now - last).components.attoseconds) / 1e18
            tokens = min(burst, tokens + max(0, elapsed) * rate)
        }
        last = now
    }
}

/// One device's token bucket on the monotonic clock (its worker's only).
actor Pacer {
    private var bucket: TokenBucket
    private let origin = ContinuousClock.now

    init(rate: Double, burst: Int) { bucket = TokenBucket(rate: rate, burst: burst) }

    /// Reserves a token; returns how long to wait before the send.
    func reserve() -> Duration { bucket.reserve(now: ContinuousClock.now - origin) }

    /// Takes a token if one is there now, without queueing.
    func take() -> Bool { bucket.take(now: ContinuousClock.now - origin) }
}
