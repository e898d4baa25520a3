import Bridge
import BridgeStore
import Foundation
import Prometheus
import Synchronization

/// The `/metrics` registry (swift-prometheus): `wabridge_devices{state}` (gauge, refreshed
/// from the registry on each scrape) and `wabridge_admin_errors_total{code}` (counter of
/// error answers by code), `wabridge_messages_received_total{device}` and
/// `wabridge_messages_sent_total{device}` (counters, from `DeviceManager.counters`:
/// inbound when the event is recorded, outbound on WhatsApp's server ack) and
/// `wabridge_device_errors_total{code}` (devices stopped by an error such as `CLIENT_OUTDATED`).
public final class AdminMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let gauges: [DeviceState: Gauge]
    /// What the message counters showed at the last scrape, per device (Prometheus
    /// counters only go up: each scrape adds the difference).
    private let exported = Mutex<[DeviceID: MessageCounters.Counts]>([:])
    private let exportedErrors = Mutex<[String: Int]>([:])

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        var g: [DeviceState: Gauge] = [:]
        for s in DeviceState.allCases {
            g[s] = registry.makeGauge(name: "wabridge_devices", labels: [("state", s.rawValue)])
        }
        gauges = g
    }

    private static var received: MetricNameDescriptor {
        MetricNameDescriptor(metricName: "wabridge_messages_received", unitName: "total",
                             helpText: "WhatsApp messages received whose event was recorded, per device")
    }
    private static var sent: MetricNameDescriptor {
        MetricNameDescriptor(metricName: "wabridge_messages_sent", unitName: "total",
                             helpText: "WhatsApp messages sent and acknowledged by the server, per device")
    }

    private static var deviceErrors: MetricNameDescriptor {
        MetricNameDescriptor(metricName: "wabridge_device_errors", unitName: "total",
                             helpText: "Devices stopped by an error that needs an operator, by code (e.g. CLIENT_OUTDATED)")
    }

    func countError(_ code: String) {
        registry.makeCounter(name: "wabridge_admin_errors_total", labels: [("code", code)]).increment()
    }

    func render(manager: DeviceManager) async -> String {
        if let counts = try? await manager.countsByState() {
            for (state, n) in counts { gauges[state]?.set(Double(n)) }
        }
        let now = manager.counters.snapshot
        let deltas = exported.withLock { last -> [(DeviceID, Int, Int)] in
            var out: [(DeviceID, Int, Int)] = []
            for (device, c) in now {
                let before = last[device] ?? MessageCounters.Counts()
                out.append((device, c.received - before.received, c.sent - before.sent))
                last[device] = c
            }
            return out
        }
        for (device, received, sent) in deltas {
            let labels = [("device", device.rawValue)]
            let r = registry.makeCounter(descriptor: Self.received, labels: labels)
            let s = registry.makeCounter(descriptor: Self.sent, labels: labels)
            if received > 0 { r.increment(by: Int64(received)) }
            if sent > 0 { s.increment(by: Int64(sent)) }
        }
        let errorDeltas = exportedErrors.withLock { last -> [(String, Int)] in
            let now = manager.counters.deviceErrorSnapshot
            defer { last = now }
            return now.map { ($0.key, $0.value - (last[$0.key] ?? 0)) }
        }
        for (code, n) in errorDeltas {
            let counter = registry.makeCounter(descriptor: Self.deviceErrors, labels: [("code", code)])
            if n > 0 { counter.increment(by: Int64(n)) }
        }
        var out: [UInt8] = []
        registry.emit(into: &out)
        return String(decoding: out, as: UTF8.self)
    }
}
