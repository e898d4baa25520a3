import BridgeStore
import Foundation
import Logging
import ServiceLifecycle
import WAClient
import WACrypto

/// Holds the data folder open for the life of the process; closes every database last.
public struct StoreService: Service {
    public let store: BridgeStore
    public init(store: BridgeStore) { self.store = store }
    public func run() async throws {
        try? await gracefulShutdown()
        await store.shutdown()
    }
}

/// Runs the device manager: loads the devices and reconnects the logged-in ones at
/// start (spread over time), stops every client at graceful shutdown.
public struct DeviceService: Service {
    public let manager: DeviceManager
    public init(manager: DeviceManager) { self.manager = manager }
    public func run() async throws {
        try await manager.start()
        try? await gracefulShutdown()
        await manager.shutdown()
    }
}

extension BridgeConfiguration {
    /// The device manager's settings: WhatsApp endpoint and Noise root from
    /// `WABRIDGE_WA_URL` / `WABRIDGE_WA_ROOT_KEY` (unset: WhatsApp's own), the start spread.
    public func deviceManagerConfiguration() throws(ConfigurationError) -> DeviceManager.Configuration {
        var client = WAClientConfiguration()
        guard let url = URL(string: waURL) else {
            throw ConfigurationError(code: .invalidValue, message: "WABRIDGE_WA_URL is not a URL")
        }
        client.endpoint = url
        // A plain ws:// endpoint is a local simulator, whose media host speaks plain http too.
        if url.scheme?.lowercased() == "ws" { client.mediaScheme = "http" }
        if let waVersion { client.appVersion = waVersion }
        if let hex = waRootKey {
            var bytes: [UInt8] = []
            var i = hex.startIndex
            while i < hex.endIndex {
                let j = hex.index(i, offsetBy: 2)
                guard let b = UInt8(hex[i..<j], radix: 16) else { break }
                bytes.append(b)
                i = j
            }
            guard bytes.count == 32, let key = try? Curve25519PublicKey(rawRepresentation: bytes) else {
                throw ConfigurationError(code: .invalidValue, message: "WABRIDGE_WA_ROOT_KEY must be 64 hex digits")
            }
            client.noiseTrustRoot = key
        }
        return DeviceManager.Configuration(client: client, reconnectSpread: .milliseconds(Int(reconnectSpread * 1000)),
                                           history: historySettings(), ownership: ownershipSettings())
    }
}

extension BridgeConfiguration {
    /// `WABRIDGE_WORKER_ID`, `WABRIDGE_LEASE_SECONDS`: `wabridge serve` always takes its devices
    /// by lease, so any number of workers (one included) may share the store.
    public func ownershipSettings() -> OwnershipSettings {
        OwnershipSettings(workerID: workerID ?? OwnershipSettings.defaultWorkerID(),
                          leaseTTL: .milliseconds(Int(leaseSeconds * 1000)))
    }

    /// `WABRIDGE_HISTORY_DAYS`, `WABRIDGE_HISTORY_MAX_MESSAGES`, `WABRIDGE_HISTORY_EVENTS`.
    public func historySettings() -> HistorySettings {
        HistorySettings(bounds: HistoryBounds(maxAge: historyDays > 0 ? TimeInterval(historyDays) * 86_400 : nil,
                                              maxMessages: historyMaxMessages),
                        publishMessages: historyEvents)
    }
}
