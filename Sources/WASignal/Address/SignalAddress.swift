import WABinary

/// Who a session belongs to: a user name and a device id, written
/// `name:device` (how WhatsApp clients key their session stores).
///
/// WhatsApp forms the name from the JID: the phone user on s.whatsapp.net, or
/// `user_<domain>` where the domain byte says which server (`_1` for a LID
/// user, `_128` hosted, `_129` hosted LID); the device is the JID's device.
public struct SignalAddress: Sendable, Hashable, CustomStringConvertible {
    public var name: String
    public var deviceID: UInt32

    public init(name: String, deviceID: UInt32) {
        self.name = name
        self.deviceID = deviceID
    }

    /// The address of one device of a user or LID JID.
    public init(jid: JID) {
        self.init(name: jid.signalAddressUser, deviceID: UInt32(jid.device))
    }

    /// Reads `name:device` back; nil when there is no `:` or the device is not a number.
    public init?(parsing text: String) {
        guard let colon = text.lastIndex(of: ":"),
              let device = UInt32(text[text.index(after: colon)...]) else { return nil }
        let name = String(text[..<colon])
        guard !name.isEmpty else { return nil }
        self.init(name: name, deviceID: device)
    }

    public var description: String { "\(name):\(deviceID)" }
}
