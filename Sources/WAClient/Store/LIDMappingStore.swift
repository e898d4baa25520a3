import WABinary

/// One account's two addresses: its phone-number user JID and its LID user JID.
public struct LIDMapping: Sendable, Hashable {
    /// `N@lid`, no device part.
    public let lid: JID
    /// `N@s.whatsapp.net`, no device part.
    public let pn: JID

    /// Throws `client.stanza_malformed` unless one JID is a LID and the other a phone-number
    /// JID, both with a user part (either order; device parts are dropped).
    public init(_ first: JID, _ second: JID) throws {
        let (lid, pn) = first.server == JID.lidServer ? (first, second) : (second, first)
        guard lid.server == JID.lidServer, pn.server == JID.userServer, !lid.user.isEmpty, !pn.user.isEmpty,
              lid.user.allSatisfy(\.isNumber), pn.user.allSatisfy(\.isNumber)
        else { throw WAClientError(.stanzaMalformed, "LID mapping needs one numeric @lid and one numeric @s.whatsapp.net JID") }
        self.lid = lid.nonAD
        self.pn = pn.nonAD
    }
}

/// The per-device PN↔LID table (whatsmeow's `LIDStore`), fed by usync answers, message
/// attributes, notifications and our own login. Lookups take and return user JIDs; callers
/// put the device part back. Implementations must be safe to call from any task.
public protocol LIDMappingStore: Sendable {
    /// Stores the mappings; a LID's phone number (or a number's LID) that changed is replaced.
    func storeLIDMappings(_ mappings: [LIDMapping]) async throws
    func lid(forPN pn: JID) async throws -> JID?
    func pn(forLID lid: JID) async throws -> JID?
    /// The LIDs of many numbers at once (number user → LID user JID; unmapped ones left out): a
    /// group send asks for every member.
    func lids(forPNs pns: [JID]) async throws -> [String: JID]
}

extension LIDMappingStore {
    public func lids(forPNs pns: [JID]) async throws -> [String: JID] {
        var out: [String: JID] = [:]
        for pn in pns { if let lid = try await lid(forPN: pn) { out[pn.user] = lid } }
        return out
    }
}

/// A `LIDMappingStore` in memory (the in-memory device store's, the simulator's clients').
public actor InMemoryLIDMappingStore: LIDMappingStore {
    private var byPN: [String: String] = [:]
    private var byLID: [String: String] = [:]

    public init() {}

    public func storeLIDMappings(_ mappings: [LIDMapping]) {
        for mapping in mappings {
            if let oldLID = byPN[mapping.pn.user], oldLID != mapping.lid.user { byLID[oldLID] = nil }
            if let oldPN = byLID[mapping.lid.user], oldPN != mapping.pn.user { byPN[oldPN] = nil }
            byPN[mapping.pn.user] = mapping.lid.user
            byLID[mapping.lid.user] = mapping.pn.user
        }
    }

    public func lid(forPN pn: JID) -> JID? { byPN[pn.user].map { JID(user: $0, server: JID.lidServer) } }
    public func pn(forLID lid: JID) -> JID? { byLID[lid.user].map { JID(user: $0, server: JID.userServer) } }
    public var count: Int { byPN.count }
}
