import Foundation
import WAProto

/// Everything we keep for one peer device: the current session state and up
/// to `maxArchivedStates` earlier ones (newest first). A new X3DH archives
/// the current state instead of dropping it, so messages the peer sent under
/// the old session before it saw the new one still decrypt.
///
/// Serialises to libsignal's RecordStructure bytes.
public struct SessionRecord: Sendable, Equatable {
    var current: SessionState?
    var previous: [SessionState]

    public init() {
        current = nil
        previous = []
    }

    public init(serialized: some DataProtocol) throws {
        let proto: SignalStorage_RecordStructure
        do { proto = try SignalStorage_RecordStructure(serializedBytes: Data(serialized)) } catch {
            throw SignalError(.corruptRecord, "session record does not parse")
        }
        current = proto.hasCurrentSession ? SessionState(structure: proto.currentSession) : nil
        previous = proto.previousSessions.map { SessionState(structure: $0) }
    }

    public func serialized() -> Data {
        var proto = SignalStorage_RecordStructure()
        if let current { proto.currentSession = current.structure }
        proto.previousSessions = previous.map(\.structure)
        return try! proto.serializedData()  // no required fields: cannot fail
    }

    /// True when there is no state at all (never talked, or all deleted).
    public var isEmpty: Bool { current == nil && previous.isEmpty }

    /// True when a usable current session exists (one that can send).
    public var hasCurrentSession: Bool { current?.hasSenderChain ?? false }

    /// How many archived states are kept.
    public var archivedStateCount: Int { previous.count }

    /// The X3DH base key that opened the current session (33-byte form).
    public var currentBaseKey: Data? { current?.structure.aliceBaseKey }

    /// Whether a state (current or archived) was opened with this base key:
    /// a PreKeySignalMessage that arrives twice must not open a second session.
    func hasState(version: UInt32, baseKey: Data) -> Bool {
        if let current, current.version == version, current.structure.aliceBaseKey == baseKey { return true }
        return previous.contains { $0.version == version && $0.structure.aliceBaseKey == baseKey }
    }

    /// Moves the current state to the archive (newest first, bounded).
    mutating func archiveCurrentState() {
        guard let current else { return }
        previous.insert(current, at: 0)
        self.current = nil
        if previous.count > SignalConstants.maxArchivedStates { previous.removeLast(previous.count - SignalConstants.maxArchivedStates) }
    }

    /// Makes `state` current, archiving the one it replaces.
    mutating func promote(_ state: SessionState) {
        archiveCurrentState()
        current = state
    }
}
