import Foundation
import WABinary

/// The answer to `<iq xmlns=w:m type=set><media_conn/></iq>`: the auth token
/// uploads carry and the hosts that take uploads and serve downloads.
public struct MediaConnection: Sendable {
    public var auth: String
    /// How long `auth` stays valid.
    public var ttl: Duration
    /// Host names (`mmg.whatsapp.net`, or `127.0.0.1:port` for the simulator), in preference order.
    public var hosts: [String]
    public var fetchedAt: ContinuousClock.Instant

    static let maxHosts = 16

    public static func query(id: String) -> Node {
        IQStanza.request(id: id, type: "set", xmlns: "w:m", children: [Node("media_conn")])
    }

    public init(parsing answer: Node, now: ContinuousClock.Instant = .now) throws {
        try IQStanza.checkResult(answer, "media_conn")
        guard let conn = answer.child("media_conn"), let auth = conn.string("auth"), !auth.isEmpty else {
            throw WAClientError(.mediaConnInvalid, "media_conn answer without auth")
        }
        let hosts = conn.children("host").prefix(Self.maxHosts).compactMap { $0.string("hostname") }.filter { !$0.isEmpty }
        guard !hosts.isEmpty else { throw WAClientError(.mediaConnInvalid, "media_conn answer without a host") }
        self.auth = auth
        ttl = .seconds(Int(conn.string("ttl") ?? "") ?? 0)
        self.hosts = hosts
        fetchedAt = now
    }

    /// Whether `auth` can still be used (with a minute to spare).
    public func isFresh(at now: ContinuousClock.Instant = .now) -> Bool { now < fetchedAt + ttl - .seconds(60) }

    /// Server side (simulator): the answer to `query`.
    public static func answer(to query: Node, auth: String, ttl: Int, hosts: [String]) -> Node {
        IQStanza.result(to: query, children: [
            Node("media_conn", attributes: [
                "auth": .string(auth), "ttl": .string(String(ttl)), "auth_ttl": .string(String(ttl)), "max_buckets": "12",
            ], children: hosts.map { Node("host", attributes: ["hostname": .string($0)]) }),
        ])
    }
}
