import ArgumentParser
import Foundation

/// `wabridge devices …`: the admin HTTP API from the terminal.
struct DevicesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devices",
        abstract: "List, create, show, delete and link devices over the admin HTTP API.",
        discussion: "Exit status: 0 ok, 1 the API refused (its error code is printed), 4 the API is unreachable.",
        subcommands: [List.self, Create.self, Show.self, Delete.self, LoginQR.self, PairCode.self]
    )

    /// A device as the admin API returns it.
    struct Device: Decodable {
        let id: String
        let state: String
        let jid: String?
        let lid: String?
        let pushName: String?
        let createdAt: String?
        let updatedAt: String?
    }

    struct Output: ParsableArguments {
        @Flag(name: .long, help: "Print the API's JSON instead of a table.")
        var json = false
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List the devices.")
        @OptionGroup var admin: AdminOptions
        @OptionGroup var output: Output

        func run() async throws {
            try await CLI.run {
                let r = try await admin.client().call(.GET, "/devices")
                if output.json { return CLI.printLine(String(decoding: r.body, as: UTF8.self)) }
                struct ListBody: Decodable { let devices: [Device] }
                let list = try DevicesCommand.decode(ListBody.self, r.body)
                CLI.printLine(DevicesCommand.table(list.devices))
            }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "create", abstract: "Create a device (the API picks an ID when --id is omitted).")
        @Option(name: .long, help: "Device ID (letters, digits, '-', '_').") var id: String?
        @OptionGroup var admin: AdminOptions
        @OptionGroup var output: Output

        func run() async throws {
            try await CLI.run {
                let r = try await admin.client().call(.POST, "/devices", json: id.map { ["id": $0] } ?? [:])
                try DevicesCommand.printDevice(r.body, json: output.json)
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "Show one device.")
        @Argument(help: "Device ID.") var id: String
        @OptionGroup var admin: AdminOptions
        @OptionGroup var output: Output

        func run() async throws {
            try await CLI.run {
                let r = try await admin.client().call(.GET, AdminClient.devicePath(id))
                try DevicesCommand.printDevice(r.body, json: output.json)
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "delete", abstract: "Delete a device (logs it out, drops its queue and data).")
        @Argument(help: "Device ID.") var id: String
        @OptionGroup var admin: AdminOptions

        func run() async throws {
            try await CLI.run {
                _ = try await admin.client().call(.DELETE, AdminClient.devicePath(id))
                CLI.printLine("deleted \(id)")
            }
        }
    }

    struct LoginQR: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "login-qr",
            abstract: "Start a QR login and print the QR code to scan with the phone (Linked devices).")
        @Argument(help: "Device ID.") var id: String
        @Flag(name: .long, help: "Draw dark modules (for terminals with a light background).") var invert = false
        @OptionGroup var admin: AdminOptions
        @OptionGroup var output: Output

        func run() async throws {
            try await CLI.run {
                let r = try await admin.client().call(.POST, AdminClient.devicePath(id, "/login/qr"))
                if output.json { return CLI.printLine(String(decoding: r.body, as: UTF8.self)) }
                struct QR: Decodable { let qr: String; let expiresAt: String?; let expiresIn: Int? }
                let qr = try DevicesCommand.decode(QR.self, r.body)
                guard let drawing = try? TerminalQR.render(qr.qr, inverted: invert) else {
                    throw CLIError("QR_ENCODING_FAILED", "libqrencode could not encode the QR text")
                }
                CLI.printLine(drawing)
                CLI.printLine("code: \(qr.qr)")
                if let s = qr.expiresIn { CLI.printLine("expires in \(s) s; run again for the next code") }
            }
        }
    }

    struct PairCode: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "pair-code",
            abstract: "Start a pairing-code login; enter the printed code on the phone.")
        @Argument(help: "Device ID.") var id: String
        @Option(name: .long, help: "The phone's number in international format (+15551234567).") var phone: String
        @OptionGroup var admin: AdminOptions
        @OptionGroup var output: Output

        func run() async throws {
            try await CLI.run {
                let r = try await admin.client().call(.POST, AdminClient.devicePath(id, "/login/pair-code"), json: ["phone": phone])
                if output.json { return CLI.printLine(String(decoding: r.body, as: UTF8.self)) }
                struct Code: Decodable { let code: String }
                CLI.printLine(try DevicesCommand.decode(Code.self, r.body).code)
            }
        }
    }

    // MARK: Output

    static func decode<T: Decodable>(_ type: T.Type, _ body: Data) throws(CLIError) -> T {
        do { return try JSONDecoder().decode(T.self, from: body) } catch {
            throw CLIError("BAD_RESPONSE", "unexpected answer from the admin API: \(String(decoding: body.prefix(200), as: UTF8.self))")
        }
    }

    static func printDevice(_ body: Data, json: Bool) throws(CLIError) {
        if json { return CLI.printLine(String(decoding: body, as: UTF8.self)) }
        let d = try decode(Device.self, body)
        let rows: [(String, String?)] = [
            ("id", d.id), ("state", d.state), ("jid", d.jid), ("lid", d.lid), ("push name", d.pushName),
            ("created", d.createdAt), ("updated", d.updatedAt),
        ]
        CLI.printLine(rows.map { "\($0.0.padding(toLength: 10, withPad: " ", startingAt: 0))\($0.1.flatMap { $0.isEmpty ? nil : $0 } ?? "-")" }
            .joined(separator: "\n"))
    }

    /// Left-aligned columns, two spaces apart; `-` for a missing value.
    static func table(_ devices: [Device]) -> String {
        let header = ["ID", "STATE", "JID", "PUSH NAME", "UPDATED"]
        let rows = devices.map { d in
            [d.id, d.state, d.jid ?? "-", (d.pushName ?? "").isEmpty ? "-" : d.pushName!, d.updatedAt ?? "-"]
        }
        let all = [header] + rows
        let widths = header.indices.map { i in all.map { $0[i].count }.max() ?? 0 }
        return all.map { row in
            row.enumerated().map { i, cell in
                i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}

/// `wabridge health`: exits 0 when the admin API's `/healthz` answers (the
/// container image's HEALTHCHECK, which has no curl).
struct HealthCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "health", abstract: "Check the worker's /healthz; exit 0 when it answers.")
    @OptionGroup var admin: AdminOptions

    func run() async throws {
        try await CLI.run {
            _ = try await admin.client().call(.GET, "/healthz")
            CLI.printLine("ok")
        }
    }
}
