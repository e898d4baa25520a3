import Bridge
import BridgeStore
import Foundation
import Prometheus

/// The `/metrics` registry (swift-prometheus): `wabridge_devices{state}` (gauge, refreshed
/// from the registry on each scrape) and `wabridge_admin_errors_total{code}` (counter of
/// error answers by code). Message counters come with the AMQP issue.
public final class AdminMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let gauges: [DeviceState: Gauge]

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        var g: [DeviceState: Gauge] = [:]
        for s in DeviceState.allCases {
            g[s] = registry.makeGauge(name: "wabridge_devices", labels: [("state", s.rawValue)])
        }
        gauges = g
    }

    func countError(_ code: String) {
        registry.makeCounter(name: "wabridge_admin_errors_total", labels: [("code", code)]).increment()
    }

    func render(manager: DeviceManager) async -> String {
        if let counts = try? await manager.countsByState() {
            for (state, n) in counts { gauges[state]?.set(Double(n)) }
        }
        var out: [UInt8] = []
        registry.emit(into: &out)
        return String(decoding: out, as: UTF8.self)
    }
}
