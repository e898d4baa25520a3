import ArgumentParser
import Bridge
import Foundation

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the worker until SIGTERM or SIGINT."
    )

    @Option(name: .long, help: "Configuration file of WABRIDGE_NAME=value lines.")
    var config: String?
    @Option(name: .customLong("amqp-url"), help: "Broker URL (default amqp://guest:guest@127.0.0.1:5672/).")
    var amqpURL: String?
    @Option(name: .customLong("data-dir"), help: "Folder for SQLite databases (default ./data).")
    var dataDir: String?

    func run() async throws {
        var flags: [BridgeConfiguration.Key: String] = [:]
        if let amqpURL { flags[.amqpURL] = amqpURL }
        if let dataDir { flags[.dataDir] = dataDir }
        let fileText = try config.map { try String(contentsOfFile: $0, encoding: .utf8) }
        let cfg = try BridgeConfiguration.resolve(
            flags: flags, environment: ProcessInfo.processInfo.environment, fileContents: fileText)
        print("wabridge: configuration resolved; broker \(cfg.amqpURL.split(separator: "@").last ?? "")")
    }
}
