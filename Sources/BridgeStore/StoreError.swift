import Foundation

/// The one error type of BridgeStore. `code` is stable (logs, HTTP and AMQP
/// error bodies match on it); `message` is for people and never holds keys.
public struct StoreError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// A device ID outside `[A-Za-z0-9][A-Za-z0-9_-]{0,63}`.
        public static let invalidDeviceID = Code(rawValue: "store.invalid_device_id")
        /// `createDevice` with an ID that is already taken.
        public static let deviceExists = Code(rawValue: "store.device_exists")
        /// No such device (or its folder is gone), or no device record yet.
        public static let notFound = Code(rawValue: "store.not_found")
        /// A stored value does not parse, or a file is not what it should be.
        public static let corrupt = Code(rawValue: "store.corrupt")
        /// Key material cannot be opened with the configured master key (or none is configured).
        public static let wrongMasterKey = Code(rawValue: "store.wrong_master_key")
        /// The master key given in the environment or file is not 32 bytes (base64).
        public static let invalidMasterKey = Code(rawValue: "store.invalid_master_key")
        /// The device's database was created without encryption and a master key is now configured.
        public static let encryptionMismatch = Code(rawValue: "store.encryption_mismatch")
        /// Settings are not a JSON object.
        public static let invalidSettings = Code(rawValue: "store.invalid_settings")
        /// A store setting from the environment is out of its range.
        public static let invalidConfiguration = Code(rawValue: "store.invalid_configuration")
        /// The file system refused (folder creation, permissions, removal).
        public static let io = Code(rawValue: "store.io")
        /// A key write from an owner whose lease was taken over: the device's fence is past
        /// the writer's generation (another worker owns the device now). Nothing was written.
        public static let fenced = Code(rawValue: "store.fenced")
        /// Another worker holds the device's lease.
        public static let leaseHeld = Code(rawValue: "store.lease_held")
        /// SQLite or PostgreSQL failed (busy past the timeout, disk full, constraint, connection lost...).
        public static let database = Code(rawValue: "store.database")
        /// `WABRIDGE_DATABASE_URL` is not a `postgres://user:pass@host:port/db` URL.
        public static let invalidDatabaseURL = Code(rawValue: "store.invalid_database_url")
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}

extension StoreError {
    /// Runs `body`, turning anything that is not already a `StoreError` into `store.database`.
    static func wrapping<T>(_ what: String, _ body: () throws -> T) throws(StoreError) -> T {
        do { return try body() } catch let error as StoreError { throw error } catch {
            throw StoreError(.database, "\(what): \(error)")
        }
    }

    static func wrapping<T>(_ what: String, _ body: () async throws -> T) async throws(StoreError) -> T {
        do { return try await body() } catch let error as StoreError { throw error } catch {
            throw StoreError(.database, "\(what): \(error)")
        }
    }
}
