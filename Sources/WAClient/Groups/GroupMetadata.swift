import Foundation
import WABinary

/// A group's metadata as today's server answers a `w:g2` query (facts: whatsmeow
/// group.go `parseGroupNode` / `parseParticipant`):
/// ```
/// <group id subject s_t s_o creator creation [creator_pn] [addressing_mode=lid|pn] [p_v_id] [size]>
///   <participant jid [type=admin|superadmin] [phone_number] [lid] [display_name]/>…
///   [<announcement/>] [<locked/>] …
/// </group>
/// ```
/// In a LID group (`addressing_mode=lid`, most groups now) a participant's `jid` is its
/// LID and `phone_number` its phone-number JID; in a phone-number group `jid` is the
/// phone-number JID and `lid` its LID.
public struct GroupMetadata: Sendable, Equatable {
    public enum AddressingMode: String, Sendable {
        case phoneNumber = "pn"
        case lid
    }

    public enum Role: String, Sendable {
        case member, admin, superadmin
    }

    public struct Participant: Sendable, Equatable {
        /// The JID the group names this member by (a LID in a LID group).
        public var jid: JID
        public var phoneNumber: JID?
        public var lid: JID?
        public var role: Role
        public var displayName: String?

        public init(jid: JID, phoneNumber: JID? = nil, lid: JID? = nil, role: Role = .member, displayName: String? = nil) {
            self.jid = jid
            self.phoneNumber = phoneNumber ?? (jid.server == JID.userServer ? jid : nil)
            self.lid = lid ?? (jid.server == JID.lidServer ? jid : nil)
            self.role = role
            self.displayName = displayName
        }

        public var isAdmin: Bool { role != .member }

        /// This member in the form a send to a group of `mode` addresses it (nil when unknown).
        public func address(in mode: AddressingMode) -> JID? {
            mode == .lid ? lid : phoneNumber
        }
    }

    public var jid: JID
    public var subject: String
    public var subjectSetAt: Int?
    public var subjectSetBy: JID?
    public var creator: JID?
    public var creatorPN: JID?
    public var creation: Int?
    public var addressingMode: AddressingMode
    /// The server's participant-list version (`p_v_id`), when it sent one.
    public var participantVersionID: String?
    public var size: Int?
    public var isAnnounce: Bool
    public var isLocked: Bool
    public var participants: [Participant]

    public init(
        jid: JID, subject: String = "", subjectSetAt: Int? = nil, subjectSetBy: JID? = nil, creator: JID? = nil,
        creatorPN: JID? = nil, creation: Int? = nil, addressingMode: AddressingMode = .phoneNumber,
        participantVersionID: String? = nil, size: Int? = nil, isAnnounce: Bool = false, isLocked: Bool = false,
        participants: [Participant] = []
    ) {
        self.jid = jid
        self.subject = subject
        self.subjectSetAt = subjectSetAt
        self.subjectSetBy = subjectSetBy
        self.creator = creator
        self.creatorPN = creatorPN
        self.creation = creation
        self.addressingMode = addressingMode
        self.participantVersionID = participantVersionID
        self.size = size
        self.isAnnounce = isAnnounce
        self.isLocked = isLocked
        self.participants = participants
    }

    /// The members as a send to this group addresses them (LIDs in a LID group); members
    /// the answer gave no such address for are left out.
    public var sendAddresses: [JID] { participants.compactMap { $0.address(in: addressingMode) } }

    /// The members as the group names them.
    public var members: [JID] { participants.map(\.jid) }

    public var admins: [JID] { participants.filter(\.isAdmin).map(\.jid) }
}

extension WAClientError.Code {
    /// A group metadata answer or group notification had a part missing or of the wrong kind.
    public static let groupMetadataInvalid = Self(rawValue: "client.group_metadata_invalid")
}

extension GroupMetadata {
    /// Most participants read from one answer: community announcement groups, the largest
    /// WhatsApp makes, hold 5,000 members (ordinary groups 1,024).
    public static let maxParticipants = 5_000
    /// Longest group id (`120363…` today, `creator-timestamp` for old groups).
    static let maxIDLength = 64

    /// Reads a `<group>` node; `expected` (when given) must be the group it names.
    /// Throws `client.group_metadata_invalid` for a malformed node and
    /// `client.limit_exceeded` past `maxParticipants`.
    public init(parsing node: Node, expected: JID? = nil) throws {
        func invalid(_ why: String) -> WAClientError { WAClientError(.groupMetadataInvalid, "group metadata: \(why)") }
        guard node.tag == "group" else { throw invalid("not a <group> node") }
        guard let id = node.string("id"), !id.isEmpty, id.count <= Self.maxIDLength,
              id.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == "-") })
        else { throw invalid("id missing or not a group id") }
        let jid = JID(user: id, server: JID.groupServer)
        if let expected, expected.nonAD != jid { throw invalid("answer names another group") }

        let mode: AddressingMode
        switch node.string("addressing_mode") {
        case nil, "": mode = .phoneNumber
        case let text?:
            guard let known = AddressingMode(rawValue: text) else { throw invalid("unknown addressing_mode") }
            mode = known
        }
        func optionalInt(_ key: String) throws -> Int? {
            guard let text = node.string(key) else { return nil }
            guard let value = Int(text), value >= 0 else { throw invalid("\(key) is not a number") }
            return value
        }
        func optionalUser(_ key: String, in element: Node, server: String? = nil) throws -> JID? {
            guard element[key] != nil else { return nil }
            guard let value = element.jid(key), !value.isAD,
                  server.map({ value.server == $0 }) ?? (value.server == JID.userServer || value.server == JID.lidServer)
            else { throw invalid("\(key) is not a user JID of the expected kind") }
            return value
        }

        let elements = node.children("participant")
        guard elements.count <= Self.maxParticipants else {
            throw WAClientError(.limitExceeded, "group metadata: \(elements.count) participants, bound \(Self.maxParticipants)")
        }
        var participants: [Participant] = []
        participants.reserveCapacity(elements.count)
        var seen = Set<JID>()
        for element in elements {
            guard let member = try optionalUser("jid", in: element) else { throw invalid("participant without jid") }
            guard seen.insert(member).inserted else { throw invalid("participant listed twice") }
            var phoneNumber: JID?
            var lid: JID?
            if member.server == JID.lidServer {
                phoneNumber = try optionalUser("phone_number", in: element, server: JID.userServer)
            } else {
                lid = try optionalUser("lid", in: element, server: JID.lidServer)
            }
            // An unknown role is a plain member (whatsmeow: admin only for these two).
            let role = element.string("type").flatMap(Role.init(rawValue:)) ?? .member
            participants.append(Participant(
                jid: member, phoneNumber: phoneNumber, lid: lid, role: role, displayName: element.string("display_name")))
        }
        self.init(
            jid: jid, subject: node.string("subject") ?? "", subjectSetAt: try optionalInt("s_t"),
            subjectSetBy: try optionalUser("s_o", in: node), creator: try optionalUser("creator", in: node),
            creatorPN: try optionalUser("creator_pn", in: node, server: JID.userServer), creation: try optionalInt("creation"),
            addressingMode: mode, participantVersionID: node.string("p_v_id"), size: try optionalInt("size"),
            isAnnounce: node.child("announcement") != nil, isLocked: node.child("locked") != nil,
            participants: participants)
    }
}
