import Foundation
#if canImport(Glibc)
import Glibc
#endif
import GRDB
import Logging

/// Owns every database of the bridge under one data folder:
///
/// ```
/// <dataDir>/registry.sqlite            the device slots
/// <dataDir>/devices/<id>/session.sqlite  keys (DeviceStore + Signal stores)
/// <dataDir>/devices/<id>/history.sqlite  history, outbox, idempotency
/// <dataDir>/devices/<id>/media/          downloaded media
/// ```
///
/// Folders are 0700, files 0600. Per-device databases open lazily and at most
/// `maxOpenDatabases` stay open (least recently used closes first).
///
/// With `BridgeStore.postgres(url:configuration:)` the registry, keys and data live in one
/// PostgreSQL database instead (see `docs/architecture.md`, "Store backends"); the data folder
/// then holds only `devices/<id>/media/`.
public final class BridgeStore: Sendable {
    public struct Configuration: Sendable {
        public var dataDirectory: URL
        /// Encrypts key material at rest when set (`MasterKey.fromEnvironment()`).
        public var masterKey: MasterKey?
        /// Per-device databases open at once (each device has two).
        public var maxOpenDatabases: Int
        /// How long a write waits for a locked database.
        public var busyTimeout: TimeInterval
        /// Page cache per connection, KiB.
        public var cacheSizeKiB: Int

        public init(dataDirectory: URL, masterKey: MasterKey? = nil, maxOpenDatabases: Int = 64,
                    busyTimeout: TimeInterval = 5, cacheSizeKiB: Int = 512) {
            self.dataDirectory = dataDirectory
            self.masterKey = masterKey
            self.maxOpenDatabases = maxOpenDatabases
            self.busyTimeout = busyTimeout
            self.cacheSizeKiB = cacheSizeKiB
        }

        /// A configuration whose master key comes from `WABRIDGE_MASTER_KEY_FILE`
        /// or `WABRIDGE_MASTER_KEY` (none set: keys stored unencrypted), and whose number of open
        /// SQLite databases is `WABRIDGE_SQLITE_OPEN_DATABASES` (default `defaultOpenDatabases()`).
        public static func fromEnvironment(
            dataDirectory: URL, environment: [String: String] = ProcessInfo.processInfo.environment
        ) throws(StoreError) -> Configuration {
            var open = defaultOpenDatabases()
            if let text = environment["WABRIDGE_SQLITE_OPEN_DATABASES"], !text.isEmpty {
                guard let n = Int(text), (8...65_536).contains(n) else {
                    throw StoreError(.invalidConfiguration, "WABRIDGE_SQLITE_OPEN_DATABASES must be 8...65536")
                }
                open = n
            }
            return Configuration(dataDirectory: dataDirectory, masterKey: try MasterKey.fromEnvironment(environment),
                                 maxOpenDatabases: open)
        }

        /// 64, or fewer when the file descriptors are short: an open WAL database holds three
        /// (file, `-wal`, `-shm`) and sockets need the rest. More stay open only at a price: each
        /// open database keeps its page cache (measured: 1,000 devices with 2,048 open cost about
        /// 330 KiB more per device and saved about 15 % of the login CPU; docs/benchmarks.md "Density").
        public static func defaultOpenDatabases() -> Int {
            var limit = rlimit()
            guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 64 }
            return min(64, max(8, Int(clamping: limit.rlim_cur) / 12))
        }
    }

    public let configuration: Configuration
    /// The device slots and the registry outbox (SQLite `Registry` or `PostgresRegistry`).
    public var registry: any RegistryStoring { registryBackend }
    let registryBackend: any RegistryBackend
    /// Device leases and worker heartbeats (several workers on one store).
    public let leases: any LeaseStoring
    /// SQLite's per-device databases (empty with PostgreSQL).
    private let cache: DatabaseCache
    private let devicesDirectory: URL
    /// The PostgreSQL database, when that is the backend.
    let postgres: PostgresBackend?

    public init(configuration: Configuration) throws(StoreError) {
        self.configuration = configuration
        let files = SQLiteFiles(busyTimeout: configuration.busyTimeout, cacheSizeKiB: configuration.cacheSizeKiB)
        try SQLiteFiles.makePrivateDirectory(configuration.dataDirectory)
        let devices = configuration.dataDirectory.appendingPathComponent("devices", isDirectory: true)
        try SQLiteFiles.makePrivateDirectory(devices)
        devicesDirectory = devices
        postgres = nil
        let registryQueue = try files.openQueue(
            at: configuration.dataDirectory.appendingPathComponent("registry.sqlite"),
            migrator: RegistrySchema.migrator, secureDelete: false)
        registryBackend = Registry(queue: registryQueue)
        leases = SQLiteLeaseStore(queue: registryQueue)
        let masterKey = configuration.masterKey
        cache = DatabaseCache(capacity: configuration.maxOpenDatabases) { key in
            let folder = devices.appendingPathComponent(key.device.rawValue, isDirectory: true)
            guard FileManager.default.fileExists(atPath: folder.path) else {
                throw StoreError(.notFound, "device \(key.device) has no folder")
            }
            switch key.kind {
            case .session:
                // The key check is installed under the same lock as the migrations (another
                // worker process may open the new file at the same moment).
                return try files.openQueue(
                    at: folder.appendingPathComponent("session.sqlite"), migrator: SessionSchema.migrator, secureDelete: true,
                    afterMigrating: { queue throws(StoreError) in
                        try SessionKeyCheck.verifyOrInstall(queue, cipher: KeyCipher(key: masterKey?.deviceKey(for: key.device)))
                    })
            case .history:
                return try files.openQueue(
                    at: folder.appendingPathComponent("history.sqlite"), migrator: HistorySchema.migrator, secureDelete: false)
            }
        }
    }

    /// A store on one PostgreSQL database (`postgres://user:pass@host:port/db`), migrated
    /// before it returns; media files stay under `configuration.dataDirectory`. Call
    /// `shutdown()` to close its connection pool.
    public static func postgres(url: String, configuration: Configuration, logger: Logger = Logger(label: "wabridge.store.postgres"))
        async throws(StoreError) -> BridgeStore {
        let backend = try await PostgresBackend.open(url: url, logger: logger)
        do throws(StoreError) {
            return try BridgeStore(configuration: configuration, postgres: backend)
        } catch {
            await backend.database.shutdown()
            throw error
        }
    }

    private init(configuration: Configuration, postgres backend: PostgresBackend) throws(StoreError) {
        self.configuration = configuration
        try SQLiteFiles.makePrivateDirectory(configuration.dataDirectory)
        let devices = configuration.dataDirectory.appendingPathComponent("devices", isDirectory: true)
        try SQLiteFiles.makePrivateDirectory(devices)
        devicesDirectory = devices
        postgres = backend
        registryBackend = backend.registry
        leases = backend.leases
        cache = DatabaseCache(capacity: 1) { key in
            throw StoreError(.database, "no SQLite database for \(key.device): the store is on PostgreSQL")
        }
    }

    /// Closes every database and, with PostgreSQL, the connection pool (the store is unusable after).
    public func shutdown() async {
        cache.closeAll()
        await postgres?.database.shutdown()
    }

    // MARK: Devices

    /// Creates a slot: registry row, folder (0700) with `media/`, and both
    /// databases (migrated; the key check records whether keys are encrypted).
    /// A nil `id` generates a UUID.
    @discardableResult
    /// `leaseFor`: the worker that holds the new device's first lease (workers sharing the store).
    public func createDevice(id: DeviceID? = nil, settings: String = "{}",
                             leaseFor owner: (worker: String, ttl: TimeInterval)? = nil) async throws(StoreError) -> RegisteredDevice {
        let id = id ?? DeviceID.generate()
        let folder = folder(of: id)
        if FileManager.default.fileExists(atPath: folder.path) {
            throw StoreError(.deviceExists, "device \(id) already has a folder")
        }
        let device = try await registryBackend.createDevice(id, settings: settings, lease: owner.map { ($0.worker, $0.ttl) }, now: Date())
        do throws(StoreError) {
            try SQLiteFiles.makePrivateDirectory(folder)
            try SQLiteFiles.makePrivateDirectory(folder.appendingPathComponent("media", isDirectory: true))
            if let postgres {
                try await postgres.installKeyCheck(id, cipher: KeyCipher(key: configuration.masterKey?.deviceKey(for: id)))
            } else {
                _ = try cache.database(for: .init(device: id, kind: .session))
                _ = try cache.database(for: .init(device: id, kind: .history))
            }
        } catch {
            cache.close(device: id)
            try? FileManager.default.removeItem(at: folder)
            try? await registryBackend.deleteDevice(id)
            throw error
        }
        return device
    }

    /// The handles of one device: its key store, its data store, its media folder.
    /// `store.not_found` for an unknown device; `store.wrong_master_key` when its
    /// keys do not open with the configured master key.
    ///
    /// `generation`: the owner generation of the caller's lease on the device. Every key write
    /// through the handle is then refused with `store.fenced` once another owner raised the
    /// device's fence past it (`raiseFence`); nil writes unfenced.
    public func device(_ id: DeviceID, generation: Int64? = nil) async throws(StoreError) -> DeviceStorage {
        _ = try await registryBackend.device(id)
        let cipher = KeyCipher(key: configuration.masterKey?.deviceKey(for: id))
        if let postgres {
            try await postgres.verifyKeyCheck(id, cipher: cipher)  // checks the master key now
            return DeviceStorage(
                id: id, folder: folder(of: id),
                keys: PostgresKeyStore(deviceID: id, database: postgres.database, cipher: cipher, generation: generation),
                data: PostgresDataStore(deviceID: id, database: postgres.database))
        }
        _ = try cache.database(for: .init(device: id, kind: .session))  // checks the master key now
        return DeviceStorage(
            id: id, folder: folder(of: id),
            keys: SQLiteSessionStore(deviceID: id, cache: cache, cipher: cipher, generation: generation),
            data: DeviceDataStore(deviceID: id, cache: cache))
    }

    /// Raises the device's fence to `generation` (never lowers it): from then on, key writes of
    /// handles opened with a lower generation are refused. A new owner calls it after taking the
    /// lease and before it connects, so the previous owner's late writes cannot land.
    public func raiseFence(_ id: DeviceID, to generation: Int64) async throws(StoreError) {
        if let postgres { return try await postgres.registry.raiseFence(id, to: generation) }
        try await SQLiteSessionStore(deviceID: id, cache: cache, cipher: KeyCipher(key: nil)).raiseFence(to: generation)
    }

    /// The device's fence now (0 until an owner raised it).
    public func fence(_ id: DeviceID) async throws(StoreError) -> Int64 {
        if let postgres { return try await postgres.registry.fence(id) }
        return try await SQLiteSessionStore(deviceID: id, cache: cache, cipher: KeyCipher(key: nil)).fence()
    }

    public func listDevices() async throws(StoreError) -> [RegisteredDevice] { try await registryBackend.listDevices() }

    /// Deletes a device: closes its databases, removes its folder, removes its row.
    public func deleteDevice(_ id: DeviceID) async throws(StoreError) {
        _ = try await registryBackend.device(id)
        cache.close(device: id)
        let folder = folder(of: id)
        if FileManager.default.fileExists(atPath: folder.path) {
            do { try FileManager.default.removeItem(at: folder) } catch {
                throw StoreError(.io, "cannot remove the folder of \(id): \(error.localizedDescription)")
            }
        }
        try await registryBackend.deleteDevice(id)
        postgres?.forget(id)
    }

    /// Closes every per-device database (they reopen on the next use).
    public func closeAll() { cache.closeAll() }

    func folder(of id: DeviceID) -> URL { devicesDirectory.appendingPathComponent(id.rawValue, isDirectory: true) }

    // MARK: Observability

    /// Per-device databases alive now (cached or still used by a running operation).
    public var openDatabaseCount: Int { cache.counter.snapshot.now }
    /// The most per-device databases ever alive at once (since the last reset).
    public var peakOpenDatabaseCount: Int { cache.counter.snapshot.peak }
    /// How many times a per-device database was opened (reopens included).
    public var databaseOpenCount: Int { cache.counter.snapshot.opens }
    public func resetPeakOpenDatabaseCount() { cache.counter.resetPeak() }
}

/// One device's handles. Holds only its own device's key and database keys:
/// nothing of another device is reachable through it.
public final class DeviceStorage: Sendable {
    public let id: DeviceID
    /// `<dataDir>/devices/<id>/`
    public let folder: URL
    /// Every key of the device (`session.sqlite`, or its rows in PostgreSQL).
    public let keys: any DeviceKeyStore
    /// History, outbox and idempotency (`history.sqlite`, or its rows in PostgreSQL).
    public let data: any DeviceDataStoring

    init(id: DeviceID, folder: URL, keys: any DeviceKeyStore, data: any DeviceDataStoring) {
        self.id = id
        self.folder = folder
        self.keys = keys
        self.data = data
    }

    /// `<dataDir>/devices/<id>/media/` (0700).
    public var mediaDirectory: URL { folder.appendingPathComponent("media", isDirectory: true) }
}
