extension JID {
    /// Parses and validates the text form (see `description`).
    ///
    /// Rejects, with `binary.invalid_jid`: empty text, more than one `@`, an
    /// empty user before `@`, a server that is not a lowercase host name,
    /// user characters outside `[0-9A-Za-z_-]` (digits only on phone-number
    /// and LID servers), a device or agent that is not a plain decimal number
    /// in range, a device on a server that has no devices, and an agent
    /// anywhere but `s.whatsapp.net` or equal to a domain byte (1, 128, 129).
    public init(parsing text: String) throws(WABinaryError) {
        guard !text.isEmpty else { throw Self.invalid("empty JID") }
        guard text.utf8.count <= 256 else { throw Self.invalid("JID longer than 256 bytes") }
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count <= 2 else { throw Self.invalid("more than one @ in \(text)") }
        guard parts.count == 2 else {
            try Self.checkServer(text)
            self.init(server: text)
            return
        }
        let local = parts[0]
        let server = String(parts[1])
        try Self.checkServer(server)
        guard !local.isEmpty else { throw Self.invalid("empty user in \(text)") }

        var userPart = Substring(local)
        var agent: UInt8 = 0
        var device: UInt16 = 0
        if let colon = local.firstIndex(of: ":") {
            userPart = local[..<colon]
            device = try Self.number(local[local.index(after: colon)...], max: 65535, what: "device", in: text)
        }
        if let dot = userPart.firstIndex(of: ".") {
            let agentText = userPart[userPart.index(after: dot)...]
            userPart = userPart[..<dot]
            agent = UInt8(try Self.number(agentText, max: 255, what: "agent", in: text))
            guard agent != 0, agent != Self.lidDomain, agent != Self.hostedDomain, agent != Self.hostedLIDDomain else {
                throw Self.invalid("agent \(agent) is not a raw agent in \(text)")
            }
            guard server == Self.userServer else { throw Self.invalid("agent on \(server) in \(text)") }
        }
        let user = String(userPart)
        try Self.checkUser(user, server: server, in: text)
        if device > 0 || agent > 0 {
            switch server {
            case Self.userServer, Self.lidServer, Self.hostedServer, Self.hostedLIDServer:
                // AD JIDs carry the device in one byte on the wire.
                guard device <= 255 else { throw Self.invalid("device \(device) over 255 in \(text)") }
            case Self.messengerServer, Self.interopServer:
                break
            default:
                throw Self.invalid("device on \(server) in \(text)")
            }
        }
        self.init(user: user, agent: agent, device: device, server: server)
    }

    private static func invalid(_ message: String) -> WABinaryError {
        WABinaryError(code: .invalidJID, message: message)
    }

    private static func checkServer(_ server: String) throws(WABinaryError) {
        guard !server.isEmpty else { throw invalid("empty server") }
        let ok = server.utf8.allSatisfy { b in
            (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9"))
                || b == UInt8(ascii: ".") || b == UInt8(ascii: "-") || b == UInt8(ascii: "_")
        }
        guard ok, server.utf8.first != UInt8(ascii: "."), server.utf8.last != UInt8(ascii: ".") else {
            throw invalid("invalid server \(server)")
        }
    }

    private static func checkUser(_ user: String, server: String, in text: String) throws(WABinaryError) {
        guard !user.isEmpty else { throw invalid("empty user in \(text)") }
        let digitsOnly: Bool
        switch server {
        case userServer, legacyUserServer, lidServer, hostedServer, hostedLIDServer, newsletterServer, botServer,
            messengerServer, interopServer:
            digitsOnly = true
        default:
            digitsOnly = false
        }
        for b in user.utf8 {
            let digit = b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")
            if digit { continue }
            let letter = (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
            if !digitsOnly && (letter || b == UInt8(ascii: "-") || b == UInt8(ascii: "_")) { continue }
            throw invalid("invalid character in user of \(text)")
        }
    }

    /// A plain decimal number: digits only, no sign, no leading zero.
    private static func number(_ text: Substring, max: Int, what: String, in jid: String) throws(WABinaryError) -> UInt16 {
        guard !text.isEmpty, text.utf8.count <= 5,
            text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
            text.utf8.count == 1 || text.utf8.first != UInt8(ascii: "0"),
            let value = Int(text), value <= max
        else { throw invalid("invalid \(what) in \(jid)") }
        return UInt16(value)
    }
}
