@testable import WABinary

/// Random node trees that exercise every wire form: single and double tokens,
/// nibble and hex strings, raw (including non-ASCII) strings, every JID kind,
/// binary content across the binary8/binary20 boundary, and nested lists.
struct NodeGenerator {
    var rng: SeededRandom
    var maxDepth = 4

    init(seed: UInt64) { rng = SeededRandom(seed: seed) }

    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &rng) }
    mutating func chance(_ percent: Int) -> Bool { int(0...99) < percent }

    mutating func digits(_ count: Int) -> String {
        String((0..<count).map { _ in Character(String(int(0...9))) })
    }

    mutating func string() -> String {
        switch int(0...9) {
        case 0, 1: return TokenTables.single[int(1...235)]
        case 2: return TokenTables.double[int(0...3)][int(0...255)]
        case 3: // nibble alphabet, sometimes odd length, up to the packed limit
            let alphabet = Array("0123456789-.")
            return String((0..<int(0...(chance(10) ? 127 : 20))).map { _ in alphabet[int(0...11)] })
        case 4:
            let alphabet = Array("0123456789ABCDEF")
            return String((0..<int(1...(chance(10) ? 127 : 20))).map { _ in alphabet[int(0...15)] })
        case 5: return digits(int(128...140))   // too long to pack: raw
        case 6: return ["héllo wörld", "👍", "日本語", "a\u{0}b", "x y\nz", ""].randomElement(using: &rng)!
        default:
            let alphabet = Array("abcdefghijklmnopqrstuvwxyz_:-.@ 0123456789XYZ")
            return String((0..<int(1...(chance(5) ? 300 : 24))).map { _ in alphabet[int(0...(alphabet.count - 1))] })
        }
    }

    mutating func jid() -> JID {
        let user = digits(int(1...18))
        switch int(0...11) {
        case 0: return JID(user: user, server: JID.userServer)
        case 1: return JID(user: user, device: UInt16(int(1...255)), server: JID.userServer)
        case 2: return JID(user: user, agent: UInt8([2, 5, 127, 130, 255].randomElement(using: &rng)!), device: UInt16(int(0...255)), server: JID.userServer)
        case 3: return JID(user: user, device: UInt16(int(0...255)), server: JID.lidServer)
        case 4: return JID(user: user, device: UInt16(int(0...255)), server: JID.hostedServer)
        case 5: return JID(user: user, device: UInt16(int(0...255)), server: JID.hostedLIDServer)
        case 6: return JID(user: "\(user)-\(digits(10))", server: JID.groupServer)
        case 7: return chance(50) ? JID.statusBroadcast : JID(user: user, server: JID.broadcastServer)
        case 8: return JID(user: user, server: JID.newsletterServer)
        case 9: return JID(user: user, device: UInt16(int(0...65535)), server: JID.messengerServer)
        case 10: return JID(user: user, device: UInt16(int(0...65535)), integrator: UInt16(int(0...65535)), server: JID.interopServer)
        default: return [JID.serverJID, JID.groupServerJID, JID(user: user, server: JID.botServer), JID(user: user, server: "c.us")].randomElement(using: &rng)!
        }
    }

    mutating func bytes() -> [UInt8] {
        let count = chance(5) ? int(250...1200) : int(0...40)
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }

    mutating func node(depth: Int = 0) -> Node {
        var tag = string()
        if tag.isEmpty { tag = "iq" }
        let attributes = (0..<int(0...5)).map { _ in
            Attribute(string(), chance(35) ? .jid(jid()) : .string(string()))
        }
        let content: NodeContent
        switch int(0...9) {
        case 0...2: content = .none
        case 3...5: content = .bytes(bytes())
        default:
            if depth >= maxDepth {
                content = .bytes(bytes())
            } else {
                content = .nodes((0..<int(0...(depth == 0 && chance(3) ? 300 : 4))).map { _ in node(depth: depth + 1) })
            }
        }
        return Node(tag, attributes, content: content)
    }
}
