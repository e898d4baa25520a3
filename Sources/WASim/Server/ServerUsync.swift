import WABinary

/// The server's side of the device-list usync: reads the users asked for and
/// builds the answer, with its own parsing (not the client's `UsyncNodes`).
///
/// ```
/// <iq type=get xmlns=usync><usync sid …><query>…</query><list><user jid/>…</list></usync></iq>
/// → <iq type=result><usync sid><list><user jid><devices><device-list><device id/>…</device-list></devices>
///     [<lid val/>]</user>…</list></usync></iq>
/// ```
public enum ServerUsync {
    /// Most users the server reads from one query.
    public static let maxUsers = 512

    /// One user's answer: its device JIDs (device 0 first) and its LID.
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

    /// The users asked for (device parts dropped).
    public static func parseQuery(_ iq: Node) throws -> [JID] {
        let ctx = "usync query"
        let users = try iq.serverChild("usync", in: ctx).serverChild("list", in: ctx).children("user")
        guard users.count <= maxUsers else { throw SimError("sim.too_many_users", "\(ctx): \(users.count) users, bound \(maxUsers)") }
        return try users.map { try $0.serverJID("jid", in: ctx).nonAD }
    }

    public static func answer(to query: Node, users: [UserDevices]) -> Node {
        let asked = query.child("usync")
        let list = users.map { user -> Node in
            var children = [Node("devices", children: [
                Node("device-list", children: user.devices.map { device in
                    device.device == 0
                        ? Node("device", attributes: ["id": "0"])
                        : Node("device", attributes: ["id": .string(String(device.device)), "key-index": .string(String(device.device))])
                }),
            ])]
            if let lid = user.lid { children.append(Node("lid", attributes: ["val": .jid(lid)])) }
            return Node("user", attributes: ["jid": .jid(user.user)], children: children)
        }
        let usync = Node("usync", attributes: [
            "sid": .string(asked?.string("sid") ?? ""), "mode": "query", "last": "true", "index": "0", "context": "message",
        ], children: [Node("list", children: list)])
        return Node("iq", attributes: ["id": .string(query.string("id") ?? ""), "type": "result", "from": .jid(JID.serverJID)],
                    children: [usync])
    }
}
