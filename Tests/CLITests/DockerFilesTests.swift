import Foundation
import WACrypto
import XCTest

/// docker/ is checked by reading it (no container engine here): the runtime
/// stage installs every library the binaries link, the build stage every
/// -dev package of scripts/lib.sh, and compose's simulator root matches the
/// key the worker trusts, as the real `wabridge-sim` prints it.
final class DockerFilesTests: XCTestCase {
    private var root: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    private func read(_ path: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
    }

    /// The packages of each stage's `apt-get install` (continuation lines joined).
    private func installedPackages(stage: Int) throws -> Set<String> {
        let text = try read("docker/Dockerfile").replacingOccurrences(of: "\\\n", with: " ")
        let stages = text.components(separatedBy: "\nFROM ").dropFirst()
        let lines = Array(stages)[stage].split(separator: "\n").filter { $0.contains("apt-get install") }
        var packages = Set<String>()
        for line in lines {
            let tail = line.components(separatedBy: "apt-get install")[1].components(separatedBy: "&&")[0]
            packages.formUnion(tail.split(separator: " ").map(String.init).filter { !$0.hasPrefix("-") })
        }
        return packages
    }

    private func shell(_ command: String, _ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: command)
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }

    /// The Debian package owning a file (usr-merged paths are tried both ways).
    private func owner(_ path: String) throws -> String? {
        let real = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        for candidate in [path, real, "/usr" + path, real.hasPrefix("/usr/") ? String(real.dropFirst(4)) : real] {
            let out = try shell("/usr/bin/dpkg", ["-S", candidate])
            if let line = out.split(separator: "\n").first, let colon = line.firstIndex(of: ":") {
                return String(line[..<colon])
            }
        }
        return nil
    }

    func testRuntimeStageInstallsEveryLibraryTheBinariesLink() throws {
        let runtime = try installedPackages(stage: 1)
        let base: Set<String> = ["libc6"] // in debian:bookworm-slim
        var checked = 0
        for binary in ["wabridge", "wabridge-sim"] {
            let ldd = try shell("/usr/bin/ldd", [try CLIProcess.binary(binary).path])
            for line in ldd.split(separator: "\n") {
                guard let arrow = line.range(of: "=> ") else { continue } // vdso, the loader
                let path = line[arrow.upperBound...].split(separator: " ").first.map(String.init) ?? ""
                // The Swift runtime and Foundation are linked statically in the image.
                if path.contains("/lib/swift/") { continue }
                XCTAssertFalse(path == "not" || path.isEmpty, "unresolved library: \(line)")
                let package = try XCTUnwrap(try owner(path), "no Debian package owns \(path)")
                let name = package.components(separatedBy: ":")[0]
                XCTAssertTrue(runtime.contains(name) || base.contains(name),
                              "\(binary) links \(path) from \(name), which the runtime stage does not install")
                checked += 1
            }
        }
        XCTAssertGreaterThanOrEqual(checked, 8, "ldd listed too few libraries to be a real check")
    }

    func testBuildStageInstallsTheDevPackagesOfLibSh() throws {
        let lib = try read("scripts/lib.sh")
        let line = try XCTUnwrap(lib.split(separator: "\n").first { $0.hasPrefix("APT_PACKAGES=(") })
        let dev = line.dropFirst("APT_PACKAGES=(".count).dropLast().split(separator: " ").map(String.init).filter { $0.hasSuffix("-dev") }
        let build = try installedPackages(stage: 0)
        XCTAssertFalse(dev.isEmpty)
        for package in dev where package != "python3-dev" { // only the Python test peers need it
            XCTAssertTrue(build.contains(package), "the build stage lacks \(package)")
        }
    }

    func testComposeSimulatorRootIsTheKeyTheWorkerTrusts() async throws {
        let compose = try read("docker/compose.yaml")
        func value(_ name: String) throws -> String {
            let line = try XCTUnwrap(compose.split(separator: "\n").first { $0.trimmingCharacters(in: .whitespaces).hasPrefix(name + ":") })
            return line.split(separator: ":", maxSplits: 1)[1].trimmingCharacters(in: CharacterSet(charactersIn: " \""))
        }
        let simPrivate = try value("WABRIDGE_SIM_ROOT_KEY")
        let workerRoot = try value("WABRIDGE_WA_ROOT_KEY")
        let key = try Curve25519PrivateKey(rawRepresentation: try XCTUnwrap(Self.bytes(simPrivate)))
        XCTAssertEqual(Self.hex(key.publicKey.rawRepresentation), workerRoot)
        XCTAssertTrue(compose.contains("ws://wabridge-sim:5280/ws/chat"))

        // The real simulator, given the key the way compose gives it, announces that root.
        let printed = try await simulatorRoot(env: ["WABRIDGE_SIM_ROOT_KEY": simPrivate])
        XCTAssertEqual(printed, workerRoot)
    }

    /// Issue 15: compose runs PostgreSQL and two workers on it, each with its own worker ID.
    func testComposeRunsTwoWorkersOnOnePostgreSQLStore() throws {
        let lines = try read("docker/compose.yaml").split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        XCTAssertTrue(lines.contains("image: postgres:15"))
        XCTAssertTrue(lines.contains("wabridge-1:") && lines.contains("wabridge-2:"))
        let urls = lines.filter { $0.hasPrefix("WABRIDGE_DATABASE_URL:") }
        XCTAssertEqual(urls.count, 1, "one store URL, shared by both workers through the env anchor")
        XCTAssertTrue(urls[0].contains("postgres://") && urls[0].contains("@postgres:5432/"), urls[0])
        XCTAssertTrue(lines.contains("<<: *worker-env"))
        let ids = lines.filter { $0.hasPrefix("WABRIDGE_WORKER_ID:") }
        XCTAssertEqual(Set(ids).count, 2, "each worker has its own ID: \(ids)")
    }

    func testSimulatorKeepsItsRootInAKeyFile() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("wabridge-sim-root-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let keyFile = dir.appendingPathComponent("root.key").path
        let publicFile = dir.appendingPathComponent("root.pub").path

        let first = try await simulatorRoot(args: ["--root-key-file", keyFile, "--root-public-key-out", publicFile])
        let stored = try String(contentsOfFile: keyFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let attributes = try FileManager.default.attributesOfItem(atPath: keyFile)
        let mode = (attributes[.posixPermissions] as? Int) ?? (attributes[.posixPermissions] as? NSNumber)?.intValue
        XCTAssertEqual(mode, 0o600)
        let key = try Curve25519PrivateKey(rawRepresentation: try XCTUnwrap(Self.bytes(stored)))
        XCTAssertEqual(Self.hex(key.publicKey.rawRepresentation), first)
        XCTAssertEqual(try String(contentsOfFile: publicFile, encoding: .utf8).trimmingCharacters(in: .newlines), first)

        let second = try await simulatorRoot(env: ["WABRIDGE_SIM_ROOT_KEY_FILE": keyFile])
        XCTAssertEqual(second, first, "a restarted simulator keeps the root from its key file")

        let bad = dir.appendingPathComponent("bad.key").path
        try "not hex".write(toFile: bad, atomically: true, encoding: .utf8)
        let refused = try await CLIProcess.run("wabridge-sim", ["--port", "0", "--control-port", "0", "--root-key-file", bad])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("64 hex digits"), refused.stderr)
    }

    /// Starts `wabridge-sim` on free ports, reads the root public key it prints, stops it by PID.
    private func simulatorRoot(args: [String] = [], env: [String: String] = [:]) async throws -> String? {
        let sim = try CLIProcess.start("wabridge-sim", ["--port", "0", "--control-port", String(try CLIProcess.freeLoopbackPort())] + args,
                                       env: env)
        let announced = await sim.wait(for: "control API", in: sim.stdout)
        let status = await sim.stop()
        XCTAssertTrue(announced, sim.stderr.value)
        XCTAssertNotNil(status)
        return sim.stdout.lines.first { $0.contains("noise root public key") }?.split(separator: " ").last.map(String.init)
    }

    static func bytes(_ hex: String) -> Data? {
        guard hex.count % 2 == 0 else { return nil }
        var data = Data()
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            guard let byte = UInt8(hex[index..<next], radix: 16) else { return nil }
            data.append(byte)
            index = next
        }
        return data
    }

    static func hex(_ data: Data) -> String { data.map { String(format: "%02x", $0) }.joined() }
}
