/// What this connection declared, in order, so it can be declared again on
/// a new connection. Server-named queues get a new name when redeclared;
/// `renamed` maps the old name to the new one for bindings and consumers.
struct TopologyRecorder {
    enum Step {
        case exchange(AMQPExchangeDeclaration)
        /// The declaration and the name the queue was recorded under.
        case queue(AMQPQueueDeclaration, recordedName: String)
        case binding(AMQPBinding)
    }

    private var exchanges: [AMQPExchangeDeclaration] = []
    private var queues: [(name: String, declaration: AMQPQueueDeclaration)] = []
    private var bindings: [AMQPBinding] = []
    private var aliases: [String: String] = [:]

    mutating func record(_ d: AMQPExchangeDeclaration) {
        exchanges.removeAll { $0.name == d.name }
        exchanges.append(d)
    }

    mutating func record(_ d: AMQPQueueDeclaration, actualName: String) {
        queues.removeAll { $0.name == actualName }
        queues.append((actualName, d))
    }

    mutating func record(_ b: AMQPBinding) {
        if !bindings.contains(b) { bindings.append(b) }
    }

    mutating func forget(_ b: AMQPBinding) {
        bindings.removeAll { $0 == b }
    }

    mutating func forgetExchange(_ name: String) {
        exchanges.removeAll { $0.name == name }
        bindings.removeAll { $0.exchange == name }
    }

    mutating func forgetQueue(_ name: String) {
        let current = currentName(of: name)
        queues.removeAll { $0.name == current || $0.name == name }
        let aliases = self.aliases
        bindings.removeAll { (aliases[$0.queue] ?? $0.queue) == current }
    }

    /// Exchanges first, then queues, then bindings: each step needs the ones before.
    func replayPlan() -> [Step] {
        exchanges.map { .exchange($0) } + queues.map { .queue($0.declaration, recordedName: $0.name) }
            + bindings.map { .binding($0) }
    }

    mutating func renamed(_ old: String, to new: String) {
        guard old != new else { return }
        for i in queues.indices where queues[i].name == old { queues[i].name = new }
        aliases[old] = new
        for (k, v) in aliases where v == old { aliases[k] = new }
    }

    func currentName(of queue: String) -> String { aliases[queue] ?? queue }
}
