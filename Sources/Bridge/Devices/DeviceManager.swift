import BridgeStore
import Foundation
import Logging
import WAClient

/// Owns the map of devices; each device is its own `DeviceActor` owning its
/// `WAClient`. Every state change is recorded in the registry and published on
/// `events`.
public actor DeviceManager {
    public struct Configuration: Sendable {
        /// The WhatsApp client settings (endpoint, Noise trust root…). The default is
        /// WhatsApp itself (`wss://web.whatsapp.com/ws/chat`, WhatsApp's root).
        public var client: WAClientConfiguration
        /// Logged-in devices reconnect at start spread evenly over this window.
        public var reconnectSpread: Duration
        /// How long `startQRLogin` waits for the first code.
        public var qrTimeout: Duration
        /// Pauses between attempts to record a device's event the outbox refused.
        public var eventRetry: EventRetryPolicy
        /// What devices keep of their phones' history sync.
        public var history: HistorySettings
        /// Set when several workers share the store: devices are connected only while this
        /// worker holds their lease (`OwnershipService` takes and gives them). nil: this
        /// worker owns every device, unfenced.
        public var ownership: OwnershipSettings?
        public init(client: WAClientConfiguration = WAClientConfiguration(),
                    reconnectSpread: Duration = .seconds(10), qrTimeout: Duration = .seconds(25),
                    eventRetry: EventRetryPolicy = EventRetryPolicy(), history: HistorySettings = HistorySettings(),
                    ownership: OwnershipSettings? = nil) {
            self.client = client
            self.ownership = ownership
            self.history = history
            self.reconnectSpread = reconnectSpread
            self.qrTimeout = qrTimeout
            self.eventRetry = eventRetry
        }
    }

    public nonisolated let events: AsyncStream<DeviceEvent>
    private let sink: AsyncStream<DeviceEvent>.Continuation
    public let store: BridgeStore
    public let configuration: Configuration
    /// Where every event of every device is recorded (the outbox, unless a test says otherwise).
    public nonisolated let recorder: any EventRecording
    /// Messages in and out per device (`/metrics`).
    public nonisolated let counters = MessageCounters()
    let logger: Logger
    /// The devices this worker holds the lease of (ownership mode; nil: it owns them all).
    public nonisolated let owned: OwnedDevices?
    /// The leases behind `owned`, as the store last answered.
    var leases: [DeviceID: DeviceLease] = [:]
    /// Connects of devices just taken over, spread out; cancelled when the device goes.
    var pendingConnects: [DeviceID: Task<Void, Never>] = [:]
    var devices: [DeviceID: DeviceActor] = [:]
    /// Told (and awaited) when a device is created or deleted at run time (DeviceManager+Commands).
    var lifecycleObservers: [DeviceLifecycleObserver] = []
    /// How admin requests for a device run by another worker reach it (DeviceManager+Control).
    var forwarder: DeviceForwarder?
    private var startTask: Task<Void, Never>?
    /// True once `start()` has loaded the registry.
    public private(set) var isReady = false

    /// `recorder` nil: an `OutboxRecorder` on `store` (an `EventPublisher` on the same
    /// recorder drains it).
    public init(store: BridgeStore, configuration: Configuration = Configuration(),
                recorder: (any EventRecording)? = nil,
                logger: Logger = Logger(label: "wabridge.devices")) {
        self.store = store
        self.configuration = configuration
        self.recorder = recorder ?? OutboxRecorder(store: store)
        self.logger = logger
        owned = configuration.ownership == nil ? nil : OwnedDevices()
        (events, sink) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(4096))
    }

    deinit { sink.finish() }

    // MARK: Lifecycle

    /// Loads every registered device and reconnects the logged-in ones, spread over
    /// `reconnectSpread` (device i of n waits spread·i/n), so a restart with many
    /// devices is no thundering herd. Returns once the map is loaded.
    public func start() async throws(DeviceError) {
        let registered: [RegisteredDevice]
        do { registered = try await store.listDevices() } catch { throw DeviceError.from(error) }
        if owned != nil {
            // Shared store: nothing connects until OwnershipService hands this worker a lease.
            for r in registered { devices[r.id] = try await makeActor(r.id) }
            isReady = true
            return
        }
        var toConnect: [DeviceActor] = []
        for r in registered {
            let actor = try await makeActor(r.id)
            devices[r.id] = actor
            if await actor.isLoggedIn() {
                toConnect.append(actor)
            } else {
                // A device left mid-login by a crash: it is not connected now.
                await actor.settleAfterCrash()
            }
        }
        isReady = true
        let spread = configuration.reconnectSpread
        let logger = logger
        startTask = Task {
            let n = toConnect.count
            let clock = ContinuousClock()
            let t0 = clock.now
            for (i, actor) in toConnect.enumerated() {
                let at = t0 + (n > 1 ? spread * (Double(i) / Double(n)) : .zero)
                try? await clock.sleep(until: at)
                if Task.isCancelled { return }
                do { try await actor.connect() } catch {
                    logger.warning("reconnect at start failed", metadata: ["device": "\(actor.id)", "error": "\(error)"])
                }
            }
        }
    }

    /// Stops every client (the stored state stays what it was, so the next start resumes).
    public func shutdown() async {
        startTask?.cancel()
        await startTask?.value
        startTask = nil
        for t in pendingConnects.values { t.cancel() }
        pendingConnects = [:]
        for actor in devices.values {
            await actor.shutdown()
            // The last state changes are in the outbox before the store closes; a failing
            // outbox gets one more try each, not retries that would hold the stop forever.
            actor.retire()
            await actor.flushEvents()
        }
        isReady = false
    }

    func makeActor(_ id: DeviceID) async throws(DeviceError) -> DeviceActor {
        let storage: DeviceStorage
        do { storage = try await store.device(id) } catch { throw DeviceError.from(error) }
        let registered = try? await store.registry.device(id)
        let sink = self.sink
        var client = configuration.client
        if let owned { client.ownership = { owned.owns(id) } }
        return DeviceActor(id: id, storage: storage, registry: store.registry, registered: registered,
                           configuration: client, recorder: recorder, counters: counters,
                           retryPolicy: configuration.eventRetry,
                           history: storedSettings(id, registered?.settings).history(defaults: configuration.history),
                           owned: owned == nil, leaseHeld: { [owned] in owned?.owns(id) ?? true }, logger: logger,
                           emit: { sink.yield($0) })
    }

    // MARK: Registry

    /// Creates a device slot with the given ID or a generated UUID.
    public func create(id text: String? = nil) async throws(DeviceError) -> DeviceInfo {
        var id: DeviceID? = nil
        if let text {
            guard DeviceID.isValid(text) else {
                throw DeviceError(.idInvalid, "device IDs are 1–64 characters of A-Z a-z 0-9 _ -, starting with a letter or digit")
            }
            id = try? DeviceID(text)
            if let id, devices[id] != nil { throw DeviceError(.exists, "device \(text) exists") }
        }
        let r: RegisteredDevice
        let lease = configuration.ownership.map { (worker: $0.workerID, ttl: $0.leaseTTL.timeInterval) }
        do { r = try await store.createDevice(id: id, leaseFor: lease) } catch { throw DeviceError.from(error) }
        // device.created is durable before the call returns, or there is no device.
        let created = DeviceEvent(deviceID: r.id, kind: .created)
        do { try await recorder.record(EventFactory.cloudEvent(created, jid: nil)) } catch {
            logger.error("device.created not recorded", metadata: ["device": "\(r.id)", "code": "\(EventFactory.errorCode(error))"])
            try? await store.deleteDevice(r.id)
            throw DeviceError(.storage, "device \(r.id) not created: its device.created event could not be recorded")
        }
        devices[r.id] = try await makeActor(r.id)
        for o in lifecycleObservers { await o(r.id, .created) }
        // Shared store: the worker that created the device takes it, so a login can start here.
        if owned != nil { _ = await acquireNow(r.id) }
        sink.yield(created)
        return DeviceInfo(r)
    }

    /// The device's own settings; a row that no longer parses is logged and read as "all
    /// defaults", so a hand-edited registry never keeps a device from starting.
    private func storedSettings(_ id: DeviceID, _ text: String?) -> DeviceSettings {
        guard let text else { return DeviceSettings() }
        do { return try DeviceSettings.stored(text) } catch {
            logger.error("device settings unreadable, using the worker's defaults",
                         metadata: ["device": "\(id)", "code": "\(error.code)"])
            return DeviceSettings()
        }
    }

    /// The device's settings as stored (its overrides) and as used (defaults filled in).
    public func settings(_ text: String) async throws(DeviceError) -> DeviceSettingsView {
        let id = try deviceID(text)
        let stored: DeviceSettings
        do { stored = try DeviceSettings.stored(try await store.registry.device(id).settings) } catch { throw DeviceError.from(error) }
        return DeviceSettingsView(stored: stored, history: stored.history(defaults: configuration.history))
    }

    /// Applies a JSON merge patch to the device's settings, stores them, and hands them to the
    /// device: history settings apply from the next history chunk on.
    public func updateSettings(_ text: String, patch: Data) async throws(DeviceError) -> DeviceSettingsView {
        let id = try deviceID(text)
        let current: DeviceSettings
        do { current = try DeviceSettings.stored(try await store.registry.device(id).settings) } catch {
            // Settings that no longer parse are replaced by the patch applied to the defaults.
            current = DeviceSettings()
        }
        let next = try current.merging(patch: patch)
        do { try await store.registry.updateSettings(id, next.storedText()) } catch { throw DeviceError.from(error) }
        let history = next.history(defaults: configuration.history)
        await devices[id]?.apply(history: history)
        return DeviceSettingsView(stored: next, history: history)
    }

    public func list() async throws(DeviceError) -> [DeviceInfo] {
        let workers = await liveOwners()
        do { return try await store.listDevices().map { DeviceInfo($0, worker: workers[$0.id]) } } catch { throw DeviceError.from(error) }
    }

    public func get(_ id: String) async throws(DeviceError) -> DeviceInfo {
        let did = try deviceID(id)
        let workers = await liveOwners()
        do { return DeviceInfo(try await store.registry.device(did), worker: workers[did]) } catch { throw DeviceError.from(error) }
    }

    /// Who runs each device now, from the shared lease table (empty with one worker and no leases).
    private func liveOwners() async -> [DeviceID: String] {
        guard owned != nil, let rows = try? await store.leases.leases(), let now = try? await store.leases.now() else { return [:] }
        var out: [DeviceID: String] = [:]
        for r in rows where r.isLive(at: now) { out[r.device] = r.owner }
        return out
    }

    /// The default-device rule: a named device must exist; none named → the only
    /// device, `DEVICE_ID_REQUIRED` with several, `DEVICE_NOT_FOUND` with none.
    public func resolve(deviceID text: String?) throws(DeviceError) -> DeviceID {
        if let text, !text.isEmpty { return try deviceID(text) }
        switch devices.count {
        case 0: throw DeviceError(.notFound, "no device exists")
        case 1: return devices.keys.first!
        default: throw DeviceError(.idRequired, "\(devices.count) devices exist: name one (X-Device-Id)")
        }
    }

    func deviceID(_ text: String) throws(DeviceError) -> DeviceID {
        guard DeviceID.isValid(text), let id = try? DeviceID(text) else {
            throw DeviceError(.idInvalid, "invalid device ID")
        }
        guard devices[id] != nil else { throw DeviceError(.notFound, "device \(text) not found") }
        return id
    }

    private func actor(_ text: String) throws(DeviceError) -> DeviceActor {
        let id = try deviceID(text)
        return devices[id]!
    }

    /// Unlinks the device on WhatsApp if connected, stops it, then removes its folder and slot.
    /// Only the owner writes into the device's files, so only the owner removes them: a device
    /// run by another worker is deleted there.
    public func delete(_ text: String) async throws(DeviceError) {
        _ = try await perform(ControlRequest(op: .delete, device: text), forward: true)
    }

    /// `delete` on the owner.
    func deleteHere(_ id: DeviceID) async throws(DeviceError) {
        let text = id.rawValue
        guard let actor = devices.removeValue(forKey: id) else { throw DeviceError(.notFound, "device \(text) not found") }
        // No command may write into the folder once its events have been moved out.
        for o in lifecycleObservers { await o(id, .deleting) }
        await actor.removeOnServer()
        await actor.shutdown()
        // Its folder is about to go: queued events get one more try, not endless retries.
        actor.retire()
        await actor.flushEvents()
        // device.deleted (and what the device had not published) must outlive its folder.
        let deleted = DeviceEvent(deviceID: id, kind: .deleted)
        do { try await recorder.recordDeletion(EventFactory.cloudEvent(deleted, jid: nil)) } catch {
            // Not recorded, not deleted: the slot stays (stopped) and the call can be repeated.
            logger.error("device.deleted not recorded", metadata: ["device": "\(id)", "code": "\(EventFactory.errorCode(error))"])
            actor.reinstate()
            devices[id] = actor
            for o in lifecycleObservers { await o(id, .created) }
            throw DeviceError(.storage, "device \(text) not deleted: its device.deleted event could not be recorded")
        }
        // A late write of the stopped client (a prekey refill still running) can put a
        // file back into the folder while it is removed: try again briefly.
        for attempt in 1...3 {
            do {
                try await store.deleteDevice(id)
                break
            } catch {
                if attempt == 3 || error.code != .io { throw DeviceError.from(error) }
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
        forgetOwnership(id)  // the lease row went with the registry row
        for o in lifecycleObservers { await o(id, .deleted) }
        sink.yield(deleted)
    }

    // MARK: Device operations

    // Each runs on the worker that owns the device (DeviceManager+Control).

    public func logout(_ text: String) async throws(DeviceError) {
        _ = try await perform(ControlRequest(op: .logout, device: text), forward: true)
    }

    public func reconnect(_ text: String) async throws(DeviceError) {
        _ = try await perform(ControlRequest(op: .reconnect, device: text), forward: true)
    }

    public func startQRLogin(_ text: String) async throws(DeviceError) -> QRLogin {
        guard let qr = try await perform(ControlRequest(op: .qrLogin, device: text), forward: true).qr else {
            throw DeviceError(.loginFailed, "device \(text): the owner answered without a QR code")
        }
        return qr
    }

    /// The device's running client, if any (internal: tests send through it).
    func client(of text: String) async throws(DeviceError) -> WAClient? {
        try await actor(text).currentClient
    }

    /// The QR code showing now, if a QR login is running.
    public func currentQR(_ text: String) async throws(DeviceError) -> QRLogin? {
        try await perform(ControlRequest(op: .currentQR, device: text), forward: true).qr
    }

    public func pairWithCode(_ text: String, phone: String) async throws(DeviceError) -> String {
        guard let code = try await perform(ControlRequest(op: .pairCode, device: text, phone: phone), forward: true).pairCode else {
            throw DeviceError(.loginFailed, "device \(text): the owner answered without a pairing code")
        }
        return code
    }

    /// Waits until the device's recorded state is `state` (polls the registry; tests, tooling).
    public func waitForState(_ text: String, _ state: DeviceState, timeout: Duration) async throws {
        let id = try deviceID(text)
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            if (try? await store.registry.device(id).state) == state { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        let now = (try? await store.registry.device(id).state.rawValue) ?? "?"
        throw DeviceError(.unavailable, "device \(text) did not reach \(state.rawValue) within \(timeout) (is \(now))")
    }

    /// Device counts by state (metrics).
    public func countsByState() async throws(DeviceError) -> [DeviceState: Int] {
        var counts = Dictionary(uniqueKeysWithValues: DeviceState.allCases.map { ($0, 0) })
        for d in try await list() { counts[d.state, default: 0] += 1 }
        return counts
    }
}
