import ArgumentParser
import Foundation
import Hummingbird
import WACrypto
import WASim

/// `wabridge-sim`: the WhatsApp server simulator on loopback, with its HTTP control API.
@main
struct SimCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wabridge-sim", abstract: "A WhatsApp server simulator for wabridge's tests and demo (loopback only).")

    @Option(help: "Plain ws:// port (0 = any free port).") var port = 5280
    @Option(help: "Also listen for wss:// on this port (minted self-signed certificate).") var tlsPort: Int?
    @Option(help: "HTTP control API port.") var controlPort = 5281
    @Option(help: "Noise root private key, 64 hex digits, so clients in other processes can trust a fixed root.")
    var rootKey: String?
    @Option(help: "Create these phones at start (comma-separated numbers).") var phones: String?
    @Option(help: "Extra DNS names for the minted TLS certificate (e.g. web.whatsapp.com); repeatable.")
    var tlsName: [String] = []
    @Option(help: "Serve this PEM certificate on the TLS listener instead of a minted one (needs --tls-key).")
    var tlsCert: String?
    @Option(help: "The PEM private key for --tls-cert.") var tlsKey: String?
    @Option(help: "Write the TLS certificate (PEM) the listener serves to this file, for clients to trust.")
    var tlsCertOut: String?

    func run() async throws {
        var configuration = WASim.Configuration()
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
        if let rootKey {
            guard let bytes = Self.hex(rootKey), bytes.count == 32 else {
                throw ValidationError("--root-key must be 64 hex digits")
            }
            configuration.root = Curve25519KeyPair(privateKey: try Curve25519PrivateKey(rawRepresentation: bytes))
        }
        let sim = try WASim(configuration: configuration)
        try await sim.start()
        for number in (phones ?? "").split(separator: ",") { await sim.createPhone(number: String(number)) }
        let root = sim.rootPublicKey.rawRepresentation.map { String(format: "%02x", $0) }.joined()
        print("wabridge-sim: ws://127.0.0.1:\(await sim.port)/ws/chat" + (await sim.tlsPort.map { "  wss://localhost:\($0)/ws/chat" } ?? ""))
        print("wabridge-sim: noise root public key \(root)")
        print("wabridge-sim: control API http://127.0.0.1:\(controlPort)")
        if let mediaPort = await sim.mediaPort { print("wabridge-sim: media host http://127.0.0.1:\(mediaPort)") }
        fflush(nil)
        try await ControlAPI.application(for: sim, port: controlPort).runService()
        await sim.shutdown()
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
