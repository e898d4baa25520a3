import Foundation
import WAProto

/// The sender keys we hold for one group sender, newest first, at most
/// `maxSenderKeyStates` (a sender rotates its key when members leave; late
/// messages under the previous key still decrypt). Serialises to libsignal's
/// SenderKeyRecordStructure.
public struct SenderKeyRecord: Sendable, Equatable {
    var states: [SenderKeyState]

    public init() { states = [] }

    public init(serialized: some DataProtocol) throws {
        let proto: SignalStorage_SenderKeyRecordStructure
        do { proto = try SignalStorage_SenderKeyRecordStructure(serializedBytes: Data(serialized)) } catch {
            throw SignalError(.corruptRecord, "sender key record does not parse")
        }
        states = proto.senderKeyStates.map { SenderKeyState(structure: $0) }
    }

    public func serialized() -> Data {
        var proto = SignalStorage_SenderKeyRecordStructure()
        proto.senderKeyStates = states.map(\.structure)
        return try! proto.serializedData()
    }

    public var isEmpty: Bool { states.isEmpty }

    func state(keyID: UInt32) -> SenderKeyState? { states.first { $0.keyID == keyID } }

    mutating func replace(_ state: SenderKeyState) {
        guard let i = states.firstIndex(where: { $0.keyID == state.keyID }) else { return }
        states[i] = state
    }

    /// Adds a state from a distribution message, newest first. The same
    /// key id with the same signing key again is ignored, so a repeated
    /// distribution message cannot rewind the chain (which would re-accept
    /// message keys already used); with a different signing key it is a new
    /// key and replaces the old state.
    mutating func add(_ state: SenderKeyState) {
        if let i = states.firstIndex(where: { $0.keyID == state.keyID }) {
            if states[i].structure.senderSigningKey.`public` == state.structure.senderSigningKey.`public` { return }
            states.remove(at: i)
        }
        states.insert(state, at: 0)
        if states.count > SignalConstants.maxSenderKeyStates { states.removeLast(states.count - SignalConstants.maxSenderKeyStates) }
    }
}
