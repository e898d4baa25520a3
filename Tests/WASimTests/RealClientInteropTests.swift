import Foundation
import XCTest

/// The real client: whatsmeow, as shipped in the PyPI package neonize (venv
/// `.venv-peers/neonize`, made by scripts/test.sh from
/// `Tests/Interop/peers/neonize.txt`), pairs with `wabridge-sim` by QR,
/// uploads its prekeys, resumes its stored session in a second run, and a
/// second account pairs by pairing code. Everything runs in a fresh network
/// namespace (`unshare -n`) where only loopback exists; the peer script
/// refuses to run otherwise. Then a simulated phone and whatsmeow exchange texts
/// both ways (whatsmeow's usync, bundle fetch, encrypt, send and ack; its
/// decrypt of a phone's pkmsg).
final class RealClientInteropTests: XCTestCase {
    func testWhatsmeowPairsByQRResumesAndPairsByCode() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let python = root.appendingPathComponent(".venv-peers/neonize/bin/python")
        guard FileManager.default.isExecutableFile(atPath: python.path) else {
            XCTFail("""
                neonize venv missing: \(python.path). Run scripts/test.sh, or by hand: python3 -m venv \
                .venv-peers/neonize && .venv-peers/neonize/bin/pip install -r Tests/Interop/peers/neonize.txt
                """)
            return
        }
        // wabridge-sim is built next to this test bundle.
        let buildDirectory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        let sim = buildDirectory.appendingPathComponent("wabridge-sim")
        guard FileManager.default.isExecutableFile(atPath: sim.path) else {
            XCTFail("wabridge-sim not built at \(sim.path); run `swift build` first")
            return
        }
        let workdir = FileManager.default.temporaryDirectory.appendingPathComponent("wabridge-neonize-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: workdir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: workdir) }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        process.arguments = ["-n", python.path, "-u", root.appendingPathComponent("Tests/Interop/python/neonize_sim_peer.py").path,
                             sim.path, workdir.path]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        DispatchQueue.global().asyncAfter(deadline: .now() + 300) { if process.isRunning { process.terminate() } }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()

        var steps: [String: [String: Any]] = [:]
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            if let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], let step = object["step"] as? String {
                steps[step] = object
            }
        }
        let log = (try? String(contentsOf: workdir.appendingPathComponent("sim.log"), encoding: .utf8)) ?? ""
        XCTAssertEqual(steps["isolation"]?["ok"] as? Bool, true, "only loopback may exist: \(steps["isolation"] ?? [:])")
        XCTAssertEqual(steps["patch"]?["ok"] as? Bool, true, "root key patch: \(steps["patch"] ?? [:])")

        let qr = try XCTUnwrap(steps["qr"], "no QR step; simulator log:\n\(log)")
        XCTAssertEqual(qr["ok"] as? Bool, true, "QR pairing: \(qr)")
        let qrEvents = (qr["events"] as? [[String: Any]] ?? []).compactMap { $0["event"] as? String }
        XCTAssertEqual(qrEvents.filter { ["paired", "connected"].contains($0) }, ["paired", "connected"])
        XCTAssertEqual(qr["devices"] as? [String], ["15551230000:1@s.whatsapp.net"])
        XCTAssertEqual(qr["prekeys"] as? Int, 812, "whatsmeow uploads 812 prekeys after its first login")
        XCTAssertTrue((qr["proxied"] as? [String] ?? []).allSatisfy { $0.hasPrefix("CONNECT web.whatsapp.com:443") })

        let resume = try XCTUnwrap(steps["resume"])
        XCTAssertEqual(resume["ok"] as? Bool, true, "resume: \(resume)")
        let resumeEvents = (resume["events"] as? [[String: Any]] ?? []).compactMap { $0["event"] as? String }
        XCTAssertEqual(resumeEvents, ["connected"], "a stored session logs in without pairing")

        let code = try XCTUnwrap(steps["code"])
        XCTAssertEqual(code["ok"] as? Bool, true, "pairing code: \(code)")
        let codeText = (code["events"] as? [[String: Any]] ?? []).first { $0["event"] as? String == "code" }?["code"] as? String
        XCTAssertNotNil(codeText.flatMap { $0.wholeMatch(of: /[1-9A-HJ-NP-TV-Z]{4}-[1-9A-HJ-NP-TV-Z]{4}/) }, "\(codeText ?? "no code")")
        XCTAssertEqual(code["devices"] as? [String], ["15551230001:1@s.whatsapp.net"])

        // Messaging: a simulated phone's text reaches whatsmeow and decrypts; whatsmeow's answer
        // reaches the phone and decrypts there.
        let message = try XCTUnwrap(steps["message"], "no message step; simulator log:\n\(log)")
        let messageEvents = message["events"] as? [[String: Any]] ?? []
        XCTAssertTrue(messageEvents.contains { $0["event"] as? String == "message" && $0["text"] as? String == "from sim phone"
            // The phone is LID-migrated: it writes LID-addressed, whatsmeow names the number as SenderAlt.
            && $0["sender_server"] as? String == "lid" && $0["sender_alt"] as? String == "15551230001" },
            "whatsmeow did not decrypt the phone's LID-addressed text: \(message)")
        XCTAssertEqual(message["ok"] as? Bool, true, "whatsmeow's send: \(message)")
        let phoneReceived = message["phoneReceived"] as? [[String: Any]] ?? []
        XCTAssertTrue(phoneReceived.contains { $0["text"] as? String == "from neonize" && $0["sender"] as? String == "15551230000:1@s.whatsapp.net" },
                      "the phone did not decrypt whatsmeow's text: \(phoneReceived)")
    }
}
