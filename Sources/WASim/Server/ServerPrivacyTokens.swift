import Foundation
import WABinary
import WACrypto

/// A token the server issued: `issuer` lets `holder` message them (both phone-number users).
struct IssuedPrivacyToken: Sendable {
    let token: Data
    let timestamp: Int
}

/// The server's privacy-token rules, as 2026 reports and whatsmeow's send.go / tctoken.go /
/// cstoken.go describe the real service:
/// * a DM to someone who has never messaged the sender needs a token, else `<ack error=463>`;
/// * a `<tctoken>` is admitted when it is the one the recipient's issue (`<iq xmlns=privacy>`)
///   made for the sender and it has not expired (4 weekly buckets);
/// * a `<cstoken>` is admitted when it is HMAC-SHA256 under the sender account's NCT salt of
///   the recipient's LID (`N@lid`);
/// * a resend of a message the server admitted (a retry) needs no token again.
/// The server reads and checks tokens itself: nothing here calls the client's token code.
extension WASim {
    /// `<ack error=463>`: the same code as a PN-addressed DM to a migrated account (the real
    /// server uses one code for both); `privacyTokenRefusals` tells them apart in tests.
    static let privacyTokenRequiredError = 463
    static let tokenBucketSeconds = 604_800
    static let tokenBuckets = 4
    static let maxAdmittedIDs = 20_000

    /// Nil when the DM may pass (and which rule passed it is counted), else the refusal.
    func privacyTokenRefusal(_ sent: Node, from sender: JID, to peer: JID) -> Int? {
        guard configuration.requirePrivacyTokens, sender.user != peer.user, phones[peer.user] != nil else { return nil }
        let key = "\(sender.user)>\(peer.user)"
        let id = sent.string("id") ?? ""
        if admittedIDs.contains("\(key)>\(id)") { return nil }
        // A valid token is counted as such even between contacts, so tests see what the client sent.
        let admittedBy: String?
        if let bytes = sent.child("tctoken")?.bytes, let issued = issuedPrivacyTokens["\(peer.user)>\(sender.user)"],
           Data(bytes) == issued.token, !Self.serverTokenExpired(issued.timestamp, now: nowSeconds) {
            admittedBy = "tctoken"
        } else if let bytes = sent.child("cstoken")?.bytes, let expected = expectedCSToken(from: sender.user, to: peer.user),
                  Data(bytes) == expected {
            admittedBy = "cstoken"
        } else if chatted.contains("\(peer.user)>\(sender.user)") {
            admittedBy = "contact"
        } else {
            admittedBy = nil
        }
        guard let admittedBy else {
            privacyTokenRefusals += 1
            return Self.privacyTokenRequiredError
        }
        privacyTokenAdmissions[admittedBy, default: 0] += 1
        admittedIDs.insert("\(key)>\(id)")
        admittedOrder.append("\(key)>\(id)")
        if admittedOrder.count > Self.maxAdmittedIDs { admittedIDs.remove(admittedOrder.removeFirst()) }
        return nil
    }

    /// A DM from `sender` reached `peer`: from now on `peer` may answer without a token.
    func noteChatted(from sender: JID, to peer: JID) {
        guard sender.user != peer.user else { return }
        chatted.insert("\(sender.user)>\(peer.user)")
    }

    /// The server's own expiry: before the oldest of the live weekly buckets.
    static func serverTokenExpired(_ timestamp: Int, now: Int) -> Bool {
        timestamp < (now / tokenBucketSeconds - (tokenBuckets - 1)) * tokenBucketSeconds
    }

    /// `<iq xmlns=privacy type=set><tokens><token jid t type=trusted_contact/>…`: `device`'s user
    /// issues its token to each named user; each holder's linked devices get it in a
    /// `<notification type=privacy_token from=issuer sender_lid=issuer's LID>`.
    func issuePrivacyTokens(_ iq: Node, by device: JID) async throws(ServerPreKeys.Refusal) {
        guard let tokens = iq.child("tokens"), !tokens.children.isEmpty, tokens.children.count <= 64 else {
            throw .badRequest("privacy iq without <tokens>")
        }
        let now = nowSeconds
        var issued: [(holder: String, token: IssuedPrivacyToken)] = []
        for child in tokens.children {
            guard child.tag == "token", child.string("type") == "trusted_contact", let jid = child.jid("jid"),
                  jid.server == JID.userServer || jid.server == JID.lidServer,
                  let t = child.string("t").flatMap(Int.init), t > 0, t <= now + 86_400
            else { throw .badRequest("privacy token entry malformed") }
            let holder = phoneNumberForm(jid.nonAD)
            guard phones[holder.user] != nil else { throw .notFound("no account \(jid.user)") }
            issued.append((holder.user, IssuedPrivacyToken(token: Symmetric.randomBytes(32), timestamp: t)))
        }
        guard let issuer = phones[device.user] else { throw .notFound("issuer has no account") }
        for (holder, token) in issued {
            issuedPrivacyTokens["\(issuer.number)>\(holder)"] = token
            let node = Node("notification", [
                Attribute("from", .jid(issuer.jid)), Attribute("type", "privacy_token"), Attribute("id", .string(String(UInt32.random(in: 1...UInt32.max)))),
                Attribute("t", .string(String(now))), Attribute("sender_lid", .jid(issuer.lid)),
            ], content: .nodes([Node("tokens", content: .nodes([
                Node("token", [Attribute("type", "trusted_contact"), Attribute("t", .string(String(token.timestamp)))],
                     content: .bytes([UInt8](token.token))),
            ]))]))
            for other in linkedDevices(of: holder) { await deliver(node, to: other) }
        }
    }

    /// The token the phone `number` puts on a DM to `peer`, as a phone would: the peer's live
    /// token for it, else a cstoken from its own NCT salt.
    func phoneTokenNode(from number: String, to peer: String) -> Node? {
        if let issued = issuedPrivacyTokens["\(peer)>\(number)"], !Self.serverTokenExpired(issued.timestamp, now: nowSeconds) {
            return Node("tctoken", content: .bytes([UInt8](issued.token)))
        }
        guard let token = expectedCSToken(from: number, to: peer) else { return nil }
        return Node("cstoken", content: .bytes([UInt8](token)))
    }

    /// The cstoken `sender` owes `peer`: HMAC-SHA256 of the peer's LID JID under the sender's
    /// NCT salt. One place, so the rule and the phones' tokens cannot drift apart.
    func expectedCSToken(from sender: String, to peer: String) -> Data? {
        guard let lidUser = phones[peer]?.lidUser else { return nil }
        return Symmetric.hmacSHA256(key: nctSalt(for: sender), Data("\(lidUser)@lid".utf8))
    }

    /// The phone `number` issues its token to `holder` (as a phone does after messaging them):
    /// the server path of `<iq xmlns=privacy>`, with `timestamp` (default now) as the phone's `t`.
    public func phoneIssuesPrivacyToken(from number: String, to holder: JID, timestamp: Int? = nil) async throws {
        guard let phone = phones[number] else { throw SimError.unknownPhone(number) }
        let iq = Node("iq", [Attribute("type", "set"), Attribute("xmlns", "privacy")], content: .nodes([
            Node("tokens", content: .nodes([Node("token", [
                Attribute("jid", .jid(holder.nonAD)), Attribute("t", .string(String(timestamp ?? nowSeconds))),
                Attribute("type", "trusted_contact"),
            ])])),
        ]))
        do { try await issuePrivacyTokens(iq, by: phone.jid) } catch {
            throw SimError("sim.bad_request", "privacy token not issued: \(error.reason)")
        }
    }

    /// The token `peer`'s issue made for `holder` (tests check what the client received).
    public func issuedPrivacyToken(by peer: String, for holder: String) -> Data? { issuedPrivacyTokens["\(peer)>\(holder)"]?.token }

    /// The phone `number`'s NCT salt (what its history sync hands its devices).
    public func accountNCTSalt(_ number: String) -> Data { nctSalt(for: number) }
}
