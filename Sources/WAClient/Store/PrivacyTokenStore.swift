import Foundation
import WABinary

/// A peer's trusted-contact token (whatsmeow `store.PrivacyToken`): what the peer's server
/// issued us so we may message them, and when we last issued ours to them.
public struct PrivacyToken: Sendable, Equatable {
    /// The peer, by LID where known (whatsmeow stores under the LID), no device part.
    public var user: JID
    /// The token bytes; empty when only `senderTimestamp` is known.
    public var token: Data
    /// When the peer's server issued `token` (it expires with `PrivacyTokens.isExpired`).
    public var timestamp: Date
    /// When we last issued our token to this peer (nil: never, as far as this device knows).
    public var senderTimestamp: Date?

    public init(user: JID, token: Data, timestamp: Date, senderTimestamp: Date? = nil) {
        self.user = user.nonAD
        self.token = token
        self.timestamp = timestamp
        self.senderTimestamp = senderTimestamp
    }
}

/// The per-device privacy-token table and the account's NCT salt (whatsmeow's
/// `PrivacyTokenStore` and `NCTSaltStore`). Implementations keep both secret at rest: a token
/// lets its holder message the peer, the salt derives `<cstoken>`s.
public protocol PrivacyTokenStore: Sendable {
    /// Stores tokens; a stored `senderTimestamp` is kept when the new value has none.
    func storePrivacyTokens(_ tokens: [PrivacyToken]) async throws
    func privacyToken(for user: JID) async throws -> PrivacyToken?
    /// Records that we issued our token to `user` at `timestamp` (a row without token if none).
    func setPrivacyTokenSenderTimestamp(_ timestamp: Date, for user: JID) async throws
    /// Deletes tokens received before `cutoff` whose sender timestamp is older too; returns how many.
    @discardableResult
    func deleteExpiredPrivacyTokens(before cutoff: Date) async throws -> Int
    func nctSalt() async throws -> Data?
    /// Stores the salt (nil or empty clears it: app state can remove it).
    func storeNCTSalt(_ salt: Data?) async throws
}

/// A `PrivacyTokenStore` in memory (the in-memory device store's).
public actor InMemoryPrivacyTokenStore: PrivacyTokenStore {
    private var tokens: [JID: PrivacyToken] = [:]
    private var salt: Data?

    public init() {}

    public func storePrivacyTokens(_ new: [PrivacyToken]) {
        for var token in new {
            if token.senderTimestamp == nil { token.senderTimestamp = tokens[token.user]?.senderTimestamp }
            tokens[token.user] = token
        }
    }

    public func privacyToken(for user: JID) -> PrivacyToken? { tokens[user.nonAD] }

    public func setPrivacyTokenSenderTimestamp(_ timestamp: Date, for user: JID) {
        let user = user.nonAD
        var token = tokens[user] ?? PrivacyToken(user: user, token: Data(), timestamp: Date(timeIntervalSince1970: 0))
        token.senderTimestamp = timestamp
        tokens[user] = token
    }

    public func deleteExpiredPrivacyTokens(before cutoff: Date) -> Int {
        let expired = tokens.filter { $0.value.timestamp < cutoff && ($0.value.senderTimestamp ?? .distantPast) < cutoff }
        for user in expired.keys { tokens[user] = nil }
        return expired.count
    }

    public func nctSalt() -> Data? { salt }
    public func storeNCTSalt(_ salt: Data?) { self.salt = salt?.isEmpty == false ? salt : nil }
}
