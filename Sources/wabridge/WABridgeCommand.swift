import ArgumentParser

@main
struct WABridgeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wabridge",
        abstract: "Bridges WhatsApp multi-device accounts to RabbitMQ.",
        discussion: """
            `serve` runs the worker. The other commands are helpers for operators and \
            backend developers: `devices` over the admin HTTP API, `send` and `events` \
            over AMQP exactly as a backend would (docs/amqp.md).
            """,
        subcommands: [ServeCommand.self, DevicesCommand.self, SendCommand.self, EventsCommand.self, HealthCommand.self],
        defaultSubcommand: ServeCommand.self
    )
}
