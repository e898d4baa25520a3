import ArgumentParser
import Foundation
import Hummingbird
import WACrypto
import WASim

/// `wabridge-sim`: the WhatsApp server simulator on loopback, with its HTTP control API.
///
/// The Noise root's private key comes from, first found: `--root-key`,
/// `WABRIDGE_SIM_ROOT_KEY`, `--root-key-file` / `WABRIDGE_SIM_ROOT_KEY_FILE`
/// (created with a fresh key when missing, so a restarted simulator keeps its
/// root); otherwise a fresh root per run. A worker in another process or
/// container trusts it through `WABRIDGE_WA_ROOT_KEY` = the printed public key
/// (also written to `--root-public-key-out`).
@main
struct SimCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wabridge-sim", abstract: "A WhatsApp server simulator for wabridge's tests and demo (loopback unless --host).")

    @Option(help: "Listen address of every listener [WABRIDGE_SIM_HOST] (default 127.0.0.1; 0.0.0.0 only inside a container).")
    var host: String?
    @Option(help: "Plain ws:// port (0 = any free port).") var port = 5280
    @Option(help: "Also listen for wss:// on this port (minted self-signed certificate).") var tlsPort: Int?
    @Option(help: "HTTP control API port.") var controlPort = 5281
    @Option(help: "Noise root private key, 64 hex digits, so clients in other processes can trust a fixed root.")
    var rootKey: String?
    @Option(help: "File holding the Noise root private key as 64 hex digits; created with a fresh key when missing [WABRIDGE_SIM_ROOT_KEY_FILE].")
    var rootKeyFile: String?
    @Option(help: "Write the Noise root public key (64 hex digits, WABRIDGE_WA_ROOT_KEY for the worker) to this file.")
    var rootPublicKeyOut: String?
    @Option(help: "Create these phones at start (comma-separated numbers).") var phones: String?
    @Option(help: "Extra DNS names for the minted TLS certificate (e.g. web.whatsapp.com); repeatable.")
    var tlsName: [String] = []
    @Option(help: "Serve this PEM certificate on the TLS listener instead of a minted one (needs --tls-key).")
    var tlsCert: String?
    @Option(help: "The PEM private key for --tls-cert.") var tlsKey: String?
    @Option(help: "Write the TLS certificate (PEM) the listener serves to this file, for clients to trust.")
    var tlsCertOut: String?

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        var configuration = WASim.Configuration()
        let host = host ?? environment["WABRIDGE_SIM_HOST"] ?? "127.0.0.1"
        configuration.host = host
        configuration.port = port
        configuration.tlsPort = tlsPort
        if tlsPort != nil {
            if let tlsCert {
                guard let tlsKey else { throw ValidationError("--tls-cert needs --tls-key") }
                configuration.tls = SimTLS(
                    certificatePEM: try String(contentsOfFile: tlsCert, encoding: .utf8),
                    privateKeyPEM: try String(contentsOfFile: tlsKey, encoding: .utf8))
            } else {
                configuration.tls = try SimTLS.mint(extraNames: tlsName)
            }
            if let tlsCertOut, let pem = configuration.tls?.certificatePEM {
                try pem.write(toFile: tlsCertOut, atomically: true, encoding: .utf8)
            }
        }
        if let privateKey = try Self.rootPrivateKey(
            flag: rootKey, environment: environment, file: rootKeyFile ?? environment["WABRIDGE_SIM_ROOT_KEY_FILE"]) {
            configuration.root = Curve25519KeyPair(privateKey: privateKey)
        }
        let sim = try WASim(configuration: configuration)
        try await sim.start()
        for number in (phones ?? "").split(separator: ",") { await sim.createPhone(number: String(number)) }
        let root = Self.hexString(sim.rootPublicKey.rawRepresentation)
        if let rootPublicKeyOut { try (root + "\n").write(toFile: rootPublicKeyOut, atomically: true, encoding: .utf8) }
        print("wabridge-sim: ws://\(host):\(await sim.port)/ws/chat" + (await sim.tlsPort.map { "  wss://localhost:\($0)/ws/chat" } ?? ""))
        print("wabridge-sim: noise root public key \(root)")
        print("wabridge-sim: control API http://\(host):\(controlPort)")
        if let mediaPort = await sim.mediaPort { print("wabridge-sim: media host http://\(host):\(mediaPort)") }
        fflush(nil)
        let control = Application(
            router: ControlAPI.router(for: sim), configuration: .init(address: .hostname(host, port: controlPort)))
        try await control.runService()
        await sim.shutdown()
    }

    /// The root private key from the flag, the environment or the key file (in
    /// that order); nil = a fresh root for this run.
    static func rootPrivateKey(flag: String?, environment: [String: String], file: String?) throws -> Curve25519PrivateKey? {
        func parse(_ text: String, _ source: String) throws -> Curve25519PrivateKey {
            let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard let bytes = hex(trimmed), bytes.count == 32 else {
                throw ValidationError("\(source) must be 64 hex digits")
            }
            return try Curve25519PrivateKey(rawRepresentation: bytes)
        }
        if let flag { return try parse(flag, "--root-key") }
        if let value = environment["WABRIDGE_SIM_ROOT_KEY"], !value.isEmpty {
            return try parse(value, "WABRIDGE_SIM_ROOT_KEY")
        }
        guard let file, !file.isEmpty else { return nil }
        if FileManager.default.fileExists(atPath: file) {
            return try parse(try String(contentsOfFile: file, encoding: .utf8), file)
        }
        let fresh = Curve25519PrivateKey.generate()
        let created = FileManager.default.createFile(
            atPath: file, contents: Data((hexString(fresh.rawRepresentation) + "\n").utf8),
            attributes: [.posixPermissions: 0o600])
        guard created else { throw ValidationError("cannot write the root key file \(file)") }
        return fresh
    }

    static func hexString(_ bytes: some Sequence<UInt8>) -> String {
        bytes.map { String(format: "%02x", $0) }.joined()
    }

    static func hex(_ text: String) -> Data? {
        var data = Data()
        var iterator = text.makeIterator()
        while let a = iterator.next() {
            guard let b = iterator.next(), let byte = UInt8(String([a, b]), radix: 16) else { return nil }
            data.append(byte)
        }
        return data
    }
}
