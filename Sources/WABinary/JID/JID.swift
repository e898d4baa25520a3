/// A WhatsApp address: `user@server`, optionally for one device
/// (`user:device@server`) and, rarely, with a raw agent (`user.agent:device@server`).
///
/// Kinds (see `Kind`): phone-number users `@s.whatsapp.net`, hidden users
/// `@lid`, groups `@g.us`, broadcast lists and `status@broadcast`, channels
/// `@newsletter`, hosted (business API) devices `@hosted` / `@hosted.lid`,
/// Messenger `@msgr` and interop `@interop` users, bots `@bot`, and bare
/// servers such as `s.whatsapp.net`.
///
/// `integrator` exists only for interop JIDs on the binary wire; the text form
/// does not carry it (as in whatsmeow), so it is lost by `description`.
public struct JID: Sendable, Hashable, CustomStringConvertible {
    public var user: String
    /// Raw agent byte of an AD JID on `s.whatsapp.net`; 0 means none. The
    /// domain values 1, 128 and 129 are not agents: they select `lid`,
    /// `hosted` and `hosted.lid` instead.
    public var agent: UInt8
    /// Device number; 0 is the primary device (the phone).
    public var device: UInt16
    /// Interop integrator id (interop JIDs only).
    public var integrator: UInt16
    public var server: String

    public init(user: String = "", agent: UInt8 = 0, device: UInt16 = 0, integrator: UInt16 = 0, server: String) {
        self.user = user
        self.agent = agent
        self.device = device
        self.integrator = integrator
        self.server = server
    }

    // MARK: Servers

    public static let userServer = "s.whatsapp.net"
    public static let groupServer = "g.us"
    public static let legacyUserServer = "c.us"
    public static let broadcastServer = "broadcast"
    public static let lidServer = "lid"
    public static let messengerServer = "msgr"
    public static let interopServer = "interop"
    public static let newsletterServer = "newsletter"
    public static let hostedServer = "hosted"
    public static let hostedLIDServer = "hosted.lid"
    public static let botServer = "bot"

    /// `s.whatsapp.net`: the address of WhatsApp's server itself (iq `to`).
    public static let serverJID = JID(server: userServer)
    public static let groupServerJID = JID(server: groupServer)
    public static let statusBroadcast = JID(user: "status", server: broadcastServer)

    // MARK: AD domain bytes (the "agent" byte of an AD JID on the wire)

    static let whatsAppDomain: UInt8 = 0
    static let lidDomain: UInt8 = 1
    static let hostedDomain: UInt8 = 128
    static let hostedLIDDomain: UInt8 = 129

    /// What kind of address this is, from its server (and user, for broadcast).
    public enum Kind: Sendable, Hashable {
        case user, lid, group, broadcastList, status, newsletter, hosted, hostedLID
        case messenger, interop, bot, legacyUser, server, other
    }

    public var kind: Kind {
        if user.isEmpty { return .server }
        switch server {
        case Self.userServer: return .user
        case Self.lidServer: return .lid
        case Self.groupServer: return .group
        case Self.broadcastServer: return user == "status" ? .status : .broadcastList
        case Self.newsletterServer: return .newsletter
        case Self.hostedServer: return .hosted
        case Self.hostedLIDServer: return .hostedLID
        case Self.messengerServer: return .messenger
        case Self.interopServer: return .interop
        case Self.botServer: return .bot
        case Self.legacyUserServer: return .legacyUser
        default: return .other
        }
    }

    /// True for a device-specific address (`user:3@…`).
    public var isAD: Bool { device > 0 || agent > 0 }

    /// The same user without agent and device (the account, not one device).
    public var nonAD: JID { JID(user: user, integrator: integrator, server: server) }

    /// The byte written as "agent" in an AD JID: the domain of lid/hosted
    /// servers, else the raw agent.
    var domainByte: UInt8 {
        switch server {
        case Self.userServer: return agent
        case Self.lidServer: return Self.lidDomain
        case Self.hostedServer: return Self.hostedDomain
        case Self.hostedLIDServer: return Self.hostedLIDDomain
        default: return agent
        }
    }

    /// The user part of this device's Signal address: `user` on
    /// s.whatsapp.net, `user_<domain>` elsewhere (e.g. `123_1` for a LID).
    public var signalAddressUser: String {
        let domain = domainByte
        return domain == 0 ? user : "\(user)_\(domain)"
    }

    /// Text form: `server`, `user@server`, `user:device@server` or
    /// `user.agent:device@server`; `JID(parsing:)` reads it back.
    public var description: String {
        if server.isEmpty { return "" }
        if agent > 0 { return "\(user).\(agent):\(device)@\(server)" }
        if device > 0 { return "\(user):\(device)@\(server)" }
        if !user.isEmpty { return "\(user)@\(server)" }
        return server
    }
}
