import Foundation
import WABinary
import WACrypto

/// `<notification type=privacy_token from=peer [sender_lid]><tokens><token type=trusted_contact t>bytes</token>…`:
/// the peer's trusted-contact tokens, which let us message them (whatsmeow notification.go).
/// Tokens are stored under the peer's LID (`sender_lid`, else the caller resolves `sender`).
public struct PrivacyTokenNotification: Sendable, Equatable {
    public struct Token: Sendable, Equatable {
        public var token: Data
        public var timestamp: Date
        public init(token: Data, timestamp: Date) {
            self.token = token
            self.timestamp = timestamp
        }
    }

    /// Most tokens read from one notification.
    public static let maxTokens = 16
    /// Largest token accepted (bytes).
    public static let maxTokenBytes = 1_024

    public var sender: JID
    public var senderLID: JID?
    /// The `trusted_contact` tokens (other types are skipped, as whatsmeow does).
    public var tokens: [Token]

    /// Throws `client.stanza_malformed` for a stanza that is not one, a missing `<tokens>`, a
    /// token without bytes or a usable `t`, and `client.limit_exceeded` beyond the bounds.
    public init(parsing node: Node) throws {
        let ctx = "privacy_token notification"
        guard node.tag == "notification", node.string("type") == "privacy_token" else {
            throw WAClientError(.stanzaMalformed, "\(ctx): not a privacy_token notification")
        }
        sender = try node.requiredJID("from", in: ctx).nonAD
        if node["sender_lid"] != nil {
            guard let lid = node.jid("sender_lid"), lid.server == JID.lidServer else {
                throw WAClientError(.stanzaMalformed, "\(ctx): sender_lid is not a LID")
            }
            senderLID = lid.nonAD
        }
        let children = try node.required("tokens", in: ctx).children("token")
        guard children.count <= Self.maxTokens else {
            throw WAClientError(.limitExceeded, "\(ctx): \(children.count) tokens, bound \(Self.maxTokens)")
        }
        tokens = try children.compactMap { child -> Token? in
            guard child.string("type") == "trusted_contact" else { return nil }
            guard let bytes = child.bytes, !bytes.isEmpty, bytes.count <= Self.maxTokenBytes else {
                throw WAClientError(.stanzaMalformed, "\(ctx): token without usable bytes")
            }
            guard let t = child.int("t"), t > 0 else { throw WAClientError(.stanzaMalformed, "\(ctx): token without a timestamp") }
            return Token(token: Data(bytes), timestamp: Date(timeIntervalSince1970: TimeInterval(t)))
        }
    }
}

/// Privacy-token arithmetic as whatsmeow's tctoken.go and cstoken.go do it.
public enum PrivacyTokens {
    /// One bucket (7 days, AB prop `tctoken_duration`) and the buckets a token lives
    /// (4, `tctoken_num_buckets`: about 28 days).
    public static let bucketSeconds: Int64 = 604_800
    public static let buckets: Int64 = 4

    /// The start of the oldest live bucket: a token received before it is expired.
    public static func cutoff(now: Date = Date()) -> Date {
        let current = Int64(now.timeIntervalSince1970) / bucketSeconds
        return Date(timeIntervalSince1970: TimeInterval((current - (buckets - 1)) * bucketSeconds))
    }

    /// A token received at `timestamp` is expired once it falls before the oldest live bucket.
    public static func isExpired(_ timestamp: Date, now: Date = Date()) -> Bool {
        timestamp < cutoff(now: now)
    }

    /// Our own token is issued to a peer again once a bucket boundary passed since the last
    /// issue (whatsmeow shouldSendNewTCToken): at most once a week per peer.
    public static func isIssueDue(lastIssued: Date?, now: Date = Date()) -> Bool {
        guard let lastIssued else { return true }
        return Int64(now.timeIntervalSince1970) / bucketSeconds > Int64(lastIssued.timeIntervalSince1970) / bucketSeconds
    }

    /// Tokens ride on DMs to people only: not groups, broadcasts, the PSA account (`0`) or bots
    /// (whatsmeow shouldSendTCTokenInChatAction / shouldSendCsToken).
    public static func applies(to jid: JID) -> Bool {
        let user = jid.nonAD
        guard user.server == JID.userServer || user.server == JID.lidServer, !user.user.isEmpty, user.user != "0" else { return false }
        return !(user.server == JID.userServer && isBotNumber(user.user))
    }

    /// whatsmeow's bot number pattern: `1313555` + 4 digits, or `131655500` + 2.
    static func isBotNumber(_ user: String) -> Bool {
        guard user.allSatisfy(\.isNumber) else { return false }
        return (user.count == 11 && user.hasPrefix("1313555")) || (user.count == 11 && user.hasPrefix("131655500"))
    }

    /// `<iq xmlns=privacy type=set><tokens><token jid t type=trusted_contact/></tokens></iq>`:
    /// we issue our token to `peer` (whatsmeow issuePrivacyToken); the server hands the peer
    /// its token in a `privacy_token` notification.
    public static func issueIQ(id: String, peer: JID, timestamp: Date) -> Node {
        Node("iq", attributes: ["id": .string(id), "type": "set", "xmlns": "privacy", "to": .jid(JID.serverJID)], children: [
            Node("tokens", content: .nodes([Node("token", [
                Attribute("jid", .jid(peer.nonAD)), Attribute("t", .string(String(Int64(timestamp.timeIntervalSince1970)))),
                Attribute("type", "trusted_contact"),
            ])])),
        ])
    }

    /// The `<cstoken>` for a DM to `recipientLID` (a LID user): HMAC-SHA256 over the LID's
    /// text under the account's `nct_salt`. Nil without a salt or for a non-LID recipient.
    public static func csToken(salt: Data, recipientLID: JID) -> Data? {
        guard !salt.isEmpty, recipientLID.server == JID.lidServer else { return nil }
        return Symmetric.hmacSHA256(key: salt, Data(recipientLID.nonAD.description.utf8))
    }
}
