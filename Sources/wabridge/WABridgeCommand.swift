import ArgumentParser

@main
struct WABridgeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wabridge",
        abstract: "Bridges WhatsApp multi-device accounts to RabbitMQ.",
        subcommands: [ServeCommand.self],
        defaultSubcommand: ServeCommand.self
    )
}
