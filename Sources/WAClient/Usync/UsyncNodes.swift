import Foundation
import WABinary

/// The device-list usync query, the client's side (query + parse of the answer;
/// the server's side is the simulator's own `ServerUsync`). Pure; the connection
/// actor supplies the IQ id and `sid`.
///
/// ```
/// <iq id type=get xmlns=usync to=s.whatsapp.net>
///   <usync sid mode=query last=true index=0 context=message>
///     <query><devices version=2/><lid/></query>
///     <list><user jid="N@s.whatsapp.net"/>…</list>
///   </usync></iq>
/// → <iq type=result><usync><list>
///     <user jid><devices><device-list><device id=0/><device id=3 key-index=1/>…
///       </device-list></devices><lid val="X@lid"/></user>…</list></usync></iq>
/// ```
public enum UsyncNodes {
    /// Most users in one query and in one answer.
    public static let maxUsers = 512
    /// Most devices read for one user (WhatsApp allows a phone and a few companions).
    public static let maxDevicesPerUser = 64

    /// One user's answer: all its device JIDs (device 0 first as sent) and its LID.
    public struct UserDevices: Sendable, Equatable {
        public var user: JID
        public var devices: [JID]
        public var lid: JID?

        public init(user: JID, devices: [JID], lid: JID? = nil) {
            self.user = user
            self.devices = devices
            self.lid = lid
        }
    }

    public static func deviceQueryIQ(id: String, sid: String, users: [JID]) throws -> Node {
        guard !users.isEmpty, users.count <= maxUsers else {
            throw WAClientError(.limitExceeded, "usync for \(users.count) users, 1…\(maxUsers) allowed")
        }
        let usync = Node("usync", attributes: [
            "sid": .string(sid), "mode": "query", "last": "true", "index": "0", "context": "message",
        ], children: [
            Node("query", children: [Node("devices", attributes: ["version": "2"]), Node("lid")]),
            Node("list", children: users.map { Node("user", attributes: ["jid": .jid($0.nonAD)]) }),
        ])
        return IQStanza.request(id: id, type: "get", xmlns: "usync", children: [usync])
    }

    /// Client side: the devices of each user in the answer (users with an `<error>` are left out).
    public static func parseDeviceAnswer(_ answer: Node) throws -> [UserDevices] {
        try IQStanza.checkResult(answer, "usync")
        let usync = answer.tag == "usync" ? answer : try answer.required("usync", in: "usync")
        let users = try usync.required("list", in: "usync").children("user")
        guard users.count <= maxUsers else { throw WAClientError(.limitExceeded, "usync: \(users.count) users, bound \(maxUsers)") }
        return try users.compactMap { user -> UserDevices? in
            let jid = try user.requiredJID("jid", in: "usync user").nonAD
            guard let list = user.child(path: "devices", "device-list") else { return nil }
            let nodes = list.children("device")
            guard nodes.count <= maxDevicesPerUser else {
                throw WAClientError(.limitExceeded, "usync: \(nodes.count) devices for one user, bound \(maxDevicesPerUser)")
            }
            let devices = nodes.compactMap { node -> JID? in
                guard let id = node.int("id"), let device = UInt16(exactly: id) else { return nil }
                var d = jid
                d.device = device
                return d
            }
            return UserDevices(user: jid, devices: devices, lid: try parseLID(user.child("lid")))
        }
    }

    /// `<lid val="X@lid"/>`: nil when absent or without `val`; a `val` that is not a LID user
    /// JID is malformed (it would poison the PN↔LID mapping).
    static func parseLID(_ node: Node?) throws -> JID? {
        guard let node, node["val"] != nil else { return nil }
        guard let lid = node.jid("val"), lid.server == JID.lidServer, !lid.user.isEmpty else {
            throw WAClientError(.stanzaMalformed, "usync: <lid val> is not a LID JID")
        }
        return lid.nonAD
    }
}
