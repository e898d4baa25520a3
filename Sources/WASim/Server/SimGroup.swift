import Foundation
import WABinary

/// A group as the simulated server keeps it: members by phone number (the server knows
/// both of each member's addresses) and the addressing mode the group is in. Today's
/// WhatsApp makes new groups LID-addressed (`addressing_mode=lid`): members, senders and
/// device lists are named by LID on the wire; phone-number groups still exist.
public struct SimGroup: Sendable {
    public enum Addressing: String, Sendable {
        case phoneNumber = "pn"
        case lid
    }

    public let jid: JID
    public var subject: String
    public var subjectSetAt: Int
    public var subjectSetBy: String
    public let creator: String
    public let creation: Int
    public let addressing: Addressing
    /// Phone numbers, in the order they joined.
    public var members: [String]
    public var admins: Set<String>
    /// Bumped on each participant change (`p_v_id`).
    public var participantVersion = 1

    public func isMember(_ number: String) -> Bool { members.contains(number) }
}
