import Synchronization

/// The command behind each WhatsApp message id a device's command path has
/// written but not yet recorded. A receipt can overtake that record (the
/// server acks, the phone answers at once, the result is still being
/// written); its `message.status` then takes the command id and correlation id
/// from here instead of going out without them.
///
/// It never makes a receipt wait: the client reads stanzas one at a time and a
/// receipt handler that waited for a send's record could wait for a stanza
/// (that send's ack, a usync answer) queued behind it. So a `delivered` may
/// reach the outbox just before its `sent`; each carries its status.
final class InFlightSends: Sendable {
    /// Who asked for a message (`message.status` `data.command_id`, `correlationid`).
    struct CommandRef: Sendable, Equatable {
        var commandID: String
        var correlationID: String
    }
    private struct Entry {
        var ref: CommandRef
        var count: Int
    }
    private let entries = Mutex<[String: Entry]>([:])

    /// Marks messages as written (counted: a retry may begin the same id again).
    func begin(_ sends: [(messageID: String, ref: CommandRef)]) {
        entries.withLock { e in
            for s in sends { e[s.messageID, default: Entry(ref: s.ref, count: 0)].count += 1 }
        }
    }

    /// The messages are recorded (or given up).
    func end(_ messageIDs: [String]) {
        entries.withLock { e in
            for id in messageIDs {
                guard let n = e[id]?.count else { continue }
                if n > 1 { e[id]?.count = n - 1 } else { e[id] = nil }
            }
        }
    }

    func command(for messageID: String) -> CommandRef? { entries.withLock { $0[messageID]?.ref } }

    var count: Int { entries.withLock { $0.count } }
}
