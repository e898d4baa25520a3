/// Types holding secret key material print as their name and public facts
/// only: `description`, `String(reflecting:)` and `dump` never show key bytes
/// (the default struct description would print them, protobuf fields and all).
protocol RedactedDescription: CustomStringConvertible, CustomReflectable {
    var publicSummary: String { get }
}

extension RedactedDescription {
    public var description: String { "\(Self.self)(\(publicSummary))" }
    public var customMirror: Mirror { Mirror(self, children: []) }
}

extension SessionRecord: RedactedDescription {
    var publicSummary: String { "current: \(current != nil), archived: \(previous.count)" }
}

extension SenderKeyRecord: RedactedDescription {
    var publicSummary: String { "states: \(states.map { $0.keyID })" }
}

extension PreKeyRecord: RedactedDescription {
    var publicSummary: String { "id: \(id)" }
}

extension SignedPreKeyRecord: RedactedDescription {
    var publicSummary: String { "id: \(id), timestamp: \(timestamp)" }
}

extension SenderKeyDistributionMessage: RedactedDescription {
    var publicSummary: String { "keyID: \(keyID), iteration: \(iteration)" }
}

extension SessionState: RedactedDescription {
    var publicSummary: String { "version: \(version)" }
}

extension SenderKeyState: RedactedDescription {
    var publicSummary: String { "keyID: \(keyID)" }
}

extension ChainKey: RedactedDescription {
    var publicSummary: String { "index: \(index)" }
}

extension MessageKeys: RedactedDescription {
    var publicSummary: String { "counter: \(counter)" }
}

extension RootKey: RedactedDescription {
    var publicSummary: String { "" }
}

extension SenderChainKey: RedactedDescription {
    var publicSummary: String { "iteration: \(iteration)" }
}

extension SenderMessageKey: RedactedDescription {
    var publicSummary: String { "iteration: \(iteration)" }
}
