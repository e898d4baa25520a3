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
    // Keyed, with the order of recording kept as a number: a worker declares one queue and one
    // binding per device, and a list searched on every declaration made 10,000 devices quadratic.
    private var queues: [String: (order: Int, declaration: AMQPQueueDeclaration)] = [:]
    private var bindings: [AMQPBinding: Int] = [:]
    private var nextOrder = 0
    private var aliases: [String: String] = [:]

    private mutating func order() -> Int {
        defer { nextOrder += 1 }
        return nextOrder
    }

    mutating func record(_ d: AMQPExchangeDeclaration) {
        exchanges.removeAll { $0.name == d.name }
        exchanges.append(d)
    }

    /// A queue declared again moves to the end of the replay, as its latest declaration.
    mutating func record(_ d: AMQPQueueDeclaration, actualName: String) {
        queues[actualName] = (order(), d)
    }

    mutating func record(_ b: AMQPBinding) {
        if bindings[b] == nil { bindings[b] = order() }
    }

    mutating func forget(_ b: AMQPBinding) {
        bindings[b] = nil
    }

    mutating func forgetExchange(_ name: String) {
        exchanges.removeAll { $0.name == name }
        bindings = bindings.filter { $0.key.exchange != name }
    }

    mutating func forgetQueue(_ name: String) {
        let current = currentName(of: name)
        queues[current] = nil
        queues[name] = nil
        let aliases = self.aliases
        bindings = bindings.filter { (aliases[$0.key.queue] ?? $0.key.queue) != current }
    }

    /// Exchanges first, then queues, then bindings: each step needs the ones before.
    func replayPlan() -> [Step] {
        let queueSteps = queues.sorted { $0.value.order < $1.value.order }
            .map { Step.queue($0.value.declaration, recordedName: $0.key) }
        let bindingSteps = bindings.sorted { $0.value < $1.value }.map { Step.binding($0.key) }
        return exchanges.map { .exchange($0) } + queueSteps + bindingSteps
    }

    mutating func renamed(_ old: String, to new: String) {
        guard old != new else { return }
        if let entry = queues.removeValue(forKey: old) { queues[new] = entry }
        aliases[old] = new
        for (k, v) in aliases where v == old { aliases[k] = new }
    }

    func currentName(of queue: String) -> String { aliases[queue] ?? queue }
}
