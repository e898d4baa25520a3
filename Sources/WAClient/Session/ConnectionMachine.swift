/// Why one connection ended, as the client's owner of the socket saw it.
public enum CloseReason: Sendable, Hashable {
    /// `<stream:error code=515>`: reconnect now (after pairing, or when the server asks).
    case restartRequired
    case transportLost(String)
    case keepaliveTimeout
    /// Any other stream error (503 and unknown codes): reconnect with backoff.
    case streamError(code: String)
    /// `<stream:error><conflict type=replaced/>`: another connection owns the device now.
    case replaced
    /// `401` + `<conflict type=device_removed/>`: the phone unlinked this device.
    case deviceRemoved
    case failure(LoginFailure)
    case ownerStopped
    case qrTimeout
}

/// The connection life cycle as a pure state machine: inputs in, actions
/// out, no I/O and no clock. The client actor performs the actions (open a
/// socket after a delay, wipe the store, publish a transition).
///
///     disconnected ─start→ connecting ─loggedIn→ connected
///     connecting/connected ─closed(retryable)→ reconnecting ─loggedIn→ connected
///     any ─replaced / banned / outdated / refused / owner stop→ disconnected (stopped)
///     any ─device removed / 401 / 403 / 406→ logged_out (keys wiped, stopped)
public struct ConnectionMachine: Sendable {
    public enum Input: Sendable, Hashable {
        case start
        case loggedIn
        case closed(CloseReason)
    }

    public enum Action: Sendable, Hashable {
        /// Publish this transition.
        case emit(StateTransition)
        /// Open a new connection after this delay.
        case connect(after: Duration)
        /// Delete every key of the device.
        case wipeStore
        /// Stop for good (no reconnect until started again).
        case stop(StopReason)
    }

    public private(set) var state: ConnectionState = .disconnected
    /// Failed attempts since the last login (drives the backoff).
    public private(set) var failedAttempts = 0
    /// True after a stop, until the next start.
    public private(set) var isStopped = true
    public let policy: ReconnectPolicy

    public init(policy: ReconnectPolicy) {
        self.policy = policy
    }

    /// - Parameter jitterUnit: a uniform sample in 0...1 for the backoff jitter.
    public mutating func handle(_ input: Input, jitterUnit: Double = 0.5) -> [Action] {
        switch input {
        case .start:
            guard isStopped else { return [] }
            isStopped = false
            failedAttempts = 0
            return [move(to: .connecting, .started), .connect(after: .zero)]

        case .loggedIn:
            guard !isStopped else { return [] }
            failedAttempts = 0
            return state == .connected ? [] : [move(to: .connected, .loggedIn)]

        case .closed(let reason):
            guard !isStopped else { return [] }
            return closed(reason, jitterUnit: jitterUnit)
        }
    }

    private mutating func closed(_ reason: CloseReason, jitterUnit: Double) -> [Action] {
        switch reason {
        case .ownerStopped:
            return stop(.disconnected, .stoppedByOwner, .ownerRequested)
        case .replaced:
            return stop(.disconnected, .replaced, .replaced)
        case .qrTimeout:
            return stop(.disconnected, .qrTimeout, .qrTimeout)
        case .deviceRemoved:
            return logOut(.deviceRemoved)
        case .restartRequired:
            return [move(to: .reconnecting, .restartRequired, retryIn: .zero), .connect(after: .zero)]
        case .failure(let failure):
            switch failure.kind {
            case .loggedOut:
                return logOut(.failure(failure))
            case .locked, .banned:
                var actions = logOut(.failure(failure))
                actions[actions.count - 1] = .stop(.banned(failure))
                return actions
            case .temporaryBan:
                return stop(.disconnected, .failure(failure), .banned(failure))
            case .clientOutdated:
                return stop(.disconnected, .failure(failure), .clientOutdated)
            case .refused:
                return stop(.disconnected, .failure(failure), .refused(failure))
            case .serverUnavailable:
                return retry(.failure(failure), jitterUnit: jitterUnit)
            }
        case .transportLost(let why):
            return retry(.transportLost(why), jitterUnit: jitterUnit)
        case .keepaliveTimeout:
            return retry(.keepaliveTimeout, jitterUnit: jitterUnit)
        case .streamError(let code):
            return retry(.streamError(code: code), jitterUnit: jitterUnit)
        }
    }

    private mutating func retry(_ reason: StateReason, jitterUnit: Double) -> [Action] {
        failedAttempts += 1
        if let limit = policy.maxAttempts, failedAttempts > limit {
            return stop(.disconnected, .gaveUp(attempts: failedAttempts - 1), .gaveUp(attempts: failedAttempts - 1))
        }
        let delay = policy.delay(attempt: failedAttempts, unit: jitterUnit)
        return [move(to: .reconnecting, reason, retryIn: delay), .connect(after: delay)]
    }

    private mutating func logOut(_ reason: StateReason) -> [Action] {
        let transition = move(to: .loggedOut, reason)
        isStopped = true
        return [transition, .wipeStore, .stop(.loggedOut(reason))]
    }

    private mutating func stop(_ to: ConnectionState, _ reason: StateReason, _ stop: StopReason) -> [Action] {
        let transition = move(to: to, reason)
        isStopped = true
        return [transition, .stop(stop)]
    }

    private mutating func move(to: ConnectionState, _ reason: StateReason, retryIn: Duration? = nil) -> Action {
        let transition = StateTransition(from: state, to: to, reason: reason, retryIn: retryIn)
        state = to
        return .emit(transition)
    }
}
