// swift-tools-version:6.0
// wabridge: WhatsApp multi-device accounts bridged to RabbitMQ.
// Module layering (dependencies point one way):
//   CRabbitMQ → AMQP
//   WACrypto → WABinary / WAProto → WASignal → WAClient
//   WAClient → BridgeStore;  Bridge (device manager) → AdminHTTP
//   executables: wabridge, wabridge-sim (WASim)
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "wabridge",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "wabridge", targets: ["wabridge"]),
        .library(name: "AMQP", targets: ["AMQP"]),
        .library(name: "WABinary", targets: ["WABinary"]),
        .library(name: "WAProto", targets: ["WAProto"]),
        .library(name: "WASignal", targets: ["WASignal"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
    ],
    targets: [
        // MARK: AMQP (rabbitmq-c)
        .systemLibrary(
            name: "CRabbitMQ",
            pkgConfig: "librabbitmq",
            providers: [.apt(["librabbitmq-dev"])]
        ),
        .target(
            name: "AMQP",
            dependencies: [
                "CRabbitMQ",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),

        // MARK: WhatsApp crypto (swift-crypto + libsodium's Edwards primitives)
        .systemLibrary(
            name: "CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"])]
        ),
        .target(
            name: "WACrypto",
            dependencies: [
                "CSodium",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),

        // MARK: Test support (peers for interop tests)
        .target(
            name: "WATestSupport",
            swiftSettings: strict
        ),

        // MARK: WhatsApp wire: binary XML nodes and JIDs (no dependencies)
        .target(
            name: "WABinary",
            swiftSettings: strict
        ),

        // MARK: WhatsApp wire (protobufs; generated code committed, see scripts/gen-protos.sh)
        .target(
            name: "WAProto",
            dependencies: [
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            exclude: ["Protos"],
            swiftSettings: strict
        ),

        // MARK: Signal protocol (libsignal v3: X3DH, double ratchet, sender keys)
        .target(
            name: "WASignal",
            dependencies: [
                "WACrypto",
                "WAProto",
                "WABinary",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: strict
        ),

        // MARK: WhatsApp client (transport: frames + Noise; hands out bytes, never nodes)
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        .target(
            name: "WAClient",
            dependencies: [
                "WACrypto", "WAProto", "WABinary", "WASignal", "CZlib",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                // Media uploads and downloads (WhatsApp's media hosts speak HTTPS).
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: strict
        ),

        // MARK: WhatsApp server simulator (the real wire protocol, on loopback)
        .target(
            name: "WASim",
            dependencies: [
                "WAClient", "WACrypto", "WAProto", "WABinary", "WASignal",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),

        // MARK: BridgeStore (registry + per-device SQLite databases, GRDB over the system SQLite)
        .target(
            name: "BridgeStore",
            dependencies: [
                "WAClient", "WASignal", "WACrypto", "WAProto", "WABinary",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: strict
        ),

        // MARK: Bridge
        .target(
            name: "Bridge",
            dependencies: [
                "AMQP", "BridgeStore", "WAClient", "WACrypto", "WABinary", "WAProto",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),

        // MARK: Admin HTTP (Hummingbird; QR PNGs from Debian's libqrencode)
        .systemLibrary(
            name: "CQRencode",
            pkgConfig: "libqrencode",
            providers: [.apt(["libqrencode-dev"])]
        ),
        .target(
            name: "AdminHTTP",
            dependencies: [
                "Bridge", "BridgeStore", "CQRencode", "CZlib",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),

        // MARK: Executables
        .executableTarget(
            name: "wabridge",
            dependencies: [
                "Bridge", "AdminHTTP", "BridgeStore", "WAClient", "WACrypto",
                "AMQP",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),

        .executableTarget(
            name: "wabridge-sim",
            dependencies: [
                "WASim", "WACrypto",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),

        // MARK: Benchmarks (reports, not timed tests)
        .executableTarget(
            name: "amqp-bench",
            dependencies: ["AMQP"],
            path: "Benchmarks/AMQPBench",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "noise-bench",
            dependencies: [
                "WAClient",
                "WACrypto",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Benchmarks/NoiseBench",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "signal-bench",
            dependencies: ["WASignal", "WACrypto"],
            path: "Benchmarks/SignalBench",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "codec-bench",
            dependencies: ["WABinary"],
            path: "Benchmarks/CodecBench",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "bridge-bench",
            dependencies: ["AMQP", "WASim", "WABinary", "WATestSupport"],
            path: "Benchmarks/BridgeBench",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "sim-scale-bench",
            dependencies: [
                "WASim", "WAClient", "WACrypto", "WABinary", "WAProto",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/SimScale",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "density-bench",
            dependencies: ["AMQP", "BridgeStore", "WAClient", "WACrypto", "WAProto", "WASignal", "WABinary", "WATestSupport"],
            path: "Benchmarks/Density",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "amqp-bench-c",
            dependencies: ["CRabbitMQ"],
            path: "Benchmarks/AMQPBaselineC"
        ),

        // MARK: Tests
        .testTarget(
            name: "AMQPTests",
            dependencies: ["AMQP"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "WACryptoTests",
            dependencies: ["WACrypto", "WATestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "WAClientTests",
            dependencies: [
                "WAClient", "WACrypto", "WAProto", "WABinary", "WASignal", "WATestSupport", "WASim",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "WASignalTests",
            dependencies: ["WASignal", "WACrypto", "WAProto", "WABinary", "WATestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "WASimTests",
            dependencies: ["WASim", "WAClient", "WACrypto", "WAProto", "WABinary"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "WABinaryTests",
            dependencies: ["WABinary"],
            resources: [.copy("Fixtures")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "WAProtoTests",
            dependencies: ["WAProto"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "BridgeStoreTests",
            dependencies: [
                "BridgeStore", "WAClient", "WASignal", "WACrypto", "WAProto", "WABinary", "WASim",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "AdminHTTPTests",
            dependencies: [
                "AdminHTTP", "Bridge", "BridgeStore", "WAClient", "WASim",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "BridgeE2ETests",
            dependencies: ["AMQP", "WASim", "WABinary", "WATestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "BridgeTests",
            dependencies: [
                "Bridge", "AMQP", "BridgeStore", "WAClient", "WASim", "WACrypto", "WABinary", "WAProto", "WATestSupport",
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            swiftSettings: strict
        ),
        // The `wabridge` and `wabridge-sim` binaries run as processes, plus docker/ checks.
        .testTarget(
            name: "CLITests",
            dependencies: ["AMQP", "AdminHTTP", "WASim", "WACrypto", "WATestSupport"],
            swiftSettings: strict
        ),
    ]
)
