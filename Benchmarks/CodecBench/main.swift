// codec-bench: encode and decode rates of WABinary for a few realistic
// stanzas. A report, not a test: run it in release mode,
//   swift run -c release codec-bench [seconds-per-case]
import WABinary

func jid(_ s: String) -> AttributeValue {
    // The stanzas below are written by hand with valid JIDs.
    guard let j = try? JID(parsing: s) else { fatalError("bad JID in benchmark: \(s)") }
    return .jid(j)
}

func filler(_ count: Int, seed: UInt8) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) }
}

/// A group message fanned out to three devices, plus the sender-key message.
let message = Node("message", attributes: [
    "id": "3EB0C767D26A1D3A6C4F", "to": jid("120363025246125244@g.us"), "type": "text", "t": "1732550000",
    "phash": "2:dGVzdGhhc2g=",
], children: [
    Node("participants", children: (1...3).map { device in
        Node("to", attributes: ["jid": jid("15551234567:\(device)@s.whatsapp.net")], children: [
            Node("enc", attributes: ["v": "2", "type": "pkmsg"], content: .bytes(filler(420, seed: UInt8(device)))),
        ])
    }),
    Node("enc", attributes: ["v": "2", "type": "skmsg"], content: .bytes(filler(160, seed: 9))),
    Node("device-identity", content: .bytes(filler(150, seed: 7))),
])

/// A read receipt for several messages.
let receipt = Node("receipt", attributes: [
    "id": "3EB0C767D26A1D3A6C4F", "from": jid("15551234567:3@s.whatsapp.net"),
    "participant": jid("102765716062358:12@lid"), "t": "1732550001", "type": "read",
], children: [
    Node("list", children: ["3EB0A1B2C3D4E5F60718", "3EB0A1B2C3D4E5F60719", "3EB0A1B2C3D4E5F6071A"].map {
        Node("item", attributes: ["id": .string($0)])
    }),
])

/// A usync device query for 50 users.
let usync = Node("iq", attributes: [
    "id": "41742.17830-12", "to": jid("s.whatsapp.net"), "type": "get", "xmlns": "usync",
], children: [
    Node("usync", attributes: ["sid": "41742.17830-13", "mode": "query", "last": "true", "index": "0", "context": "message"],
         children: [
            Node("query", children: [Node("devices", attributes: ["version": "2"])]),
            Node("list", children: (0..<50).map { i in
                Node("user", attributes: ["jid": jid("1555\(1_000_000 + i * 7919)@s.whatsapp.net")])
            }),
         ]),
])

let secondsPerCase = CommandLine.arguments.dropFirst().first.flatMap(Double.init) ?? 1.0
let budget = Duration.milliseconds(Int64(secondsPerCase * 1000))

/// Runs `body` in batches until the budget is spent; returns operations per second.
func rate(_ body: () throws -> Void) rethrows -> Double {
    let clock = ContinuousClock()
    for _ in 0..<200 { try body() }   // warm up
    var operations = 0
    let start = clock.now
    var elapsed = Duration.zero
    while elapsed < budget {
        for _ in 0..<500 { try body() }
        operations += 500
        elapsed = clock.now - start
    }
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    return Double(operations) / seconds
}

func format(_ value: Double) -> String {
    let rounded = (value / 1000 + 0.5)
    return "\(Int(rounded))k"
}

print("codec-bench: WABinary node codec, \(secondsPerCase) s per case")
print("stanza          bytes   nodes   encode/s   decode/s   decode MB/s")
for (name, node) in [("message+enc", message), ("receipt", receipt), ("iq usync(50)", usync)] {
    do {
        let bytes = try BinaryEncoder.encode(node)
        guard try BinaryDecoder.decode(bytes) == node else { fatalError("\(name) does not round-trip") }
        var sink = 0
        let encodeRate = try rate { sink &+= try BinaryEncoder.encode(node).count }
        let decodeRate = try rate { sink &+= try BinaryDecoder.decode(bytes).attributes.count }
        func count(_ n: Node) -> Int { 1 + n.children.reduce(0) { $0 + count($1) } }
        let mbps = decodeRate * Double(bytes.count) / 1_000_000
        let columns = [
            name.rightPad(14),
            String(bytes.count).leftPad(7), String(count(node)).leftPad(7),
            format(encodeRate).leftPad(10), format(decodeRate).leftPad(10),
            String(Int(mbps + 0.5)).leftPad(12),
        ]
        print(columns.joined(separator: " ") + (sink == 42 ? " " : ""))
    } catch {
        print("\(name): \(error)")
    }
}

extension String {
    func leftPad(_ width: Int) -> String { String(repeating: " ", count: max(0, width - count)) + self }
}

extension String {
    func rightPad(_ width: Int) -> String { self + String(repeating: " ", count: max(0, width - count)) }
}
