/// Whose sender key in which group: the group id (WhatsApp: the group JID
/// text) and the sending device's address.
public struct SenderKeyName: Sendable, Hashable, CustomStringConvertible {
    public var groupID: String
    public var sender: SignalAddress

    public init(groupID: String, sender: SignalAddress) {
        self.groupID = groupID
        self.sender = sender
    }

    /// `group::name::device`, as go.mau.fi/libsignal keys its sender-key store.
    public var description: String { "\(groupID)::\(sender.name)::\(sender.deviceID)" }
}
