// swift-tools-version: 6.2
import PackageDescription

let package = Package(
    name: "switchboard",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "switchboard", targets: ["switchboard"]),
        .library(name: "Switchboard", targets: ["Switchboard"]),
        .library(name: "SwitchboardClient", targets: ["SwitchboardClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-configuration.git", from: "1.4.0", traits: [.defaults, "YAML"]),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.7.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
    ],
    targets: [
        /// The HTTP/1.1 wire format: the request parser the engine's codec and the fuzz target share.
        .target(
            name: "SwitchboardHTTP1",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        /// libFuzzer targets over the protocol parsers written here (HTTP/1.1, STUN), picked by name;
        /// built without libFuzzer, it replays a corpus.
        .executableTarget(
            name: "SwitchboardFuzzer",
            dependencies: [
                "SwitchboardHTTP1",
                "SwitchboardSTUN",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        /// The STUN message codec (RFC 8489): parsing, encoding, FINGERPRINT, what integrity covers.
        .target(name: "SwitchboardSTUN"),
        /// Real-time communication: the STUN/TURN server on UDP and TCP, and signaling rooms.
        .target(
            name: "SwitchboardRTC",
            dependencies: [
                "SwitchboardEngine",
                "SwitchboardSTUN",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        /// The network engine: listeners, execution models, HTTP/1.1 pipeline, limits, journey timing.
        .target(
            name: "SwitchboardEngine",
            dependencies: [
                "SwitchboardHTTP1",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.embedInCode("console.html")]
        ),
        /// Durable state behind one set of backend-neutral protocols, and the job rules every backend applies.
        .target(
            name: "SwitchboardStore",
            dependencies: [.product(name: "ServiceLifecycle", package: "swift-service-lifecycle")]
        ),
        /// The embedded store: one SQLite file (GRDB), for one node.
        .target(
            name: "SwitchboardSQLite",
            dependencies: [
                "SwitchboardStore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        /// The shared store: PostgreSQL (postgres-nio) for several nodes, with LISTEN/NOTIFY between them.
        .target(
            name: "SwitchboardPostgres",
            dependencies: [
                "SwitchboardStore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        /// Topics: durable ordered logs, group commit, and the one delivery core every pattern adapts.
        .target(
            name: "SwitchboardBroker",
            dependencies: [
                "SwitchboardStore",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        /// Jobs: the queue with leases, retries and dead letters over the store, and the built-in workers.
        .target(
            name: "SwitchboardJobs",
            dependencies: [
                "SwitchboardBroker",
                "SwitchboardEngine",
                "SwitchboardStore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        /// Resumable uploads (tus 1.0): files under the data directory, offsets in the store.
        .target(
            name: "SwitchboardUploads",
            dependencies: [
                "SwitchboardBroker",
                "SwitchboardEngine",
                "SwitchboardJobs",
                "SwitchboardStore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        /// Routes, JSON errors and the operational endpoints, on top of the engine and the store.
        .target(
            name: "SwitchboardAPI",
            dependencies: [
                "SwitchboardBroker",
                "SwitchboardRTC",
                "SwitchboardJobs",
                "SwitchboardUploads",
                "SwitchboardEngine",
                "SwitchboardStore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            resources: [.embedInCode("openapi.json")]
        ),
        /// The messages and service stubs of `Protos/` and of the standard gRPC services, generated by
        /// `scripts/generate-protos` and committed.
        .target(
            name: "SwitchboardProtos",
            dependencies: [
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        /// gRPC: the seed's Todo service, topics and jobs as gRPC services, health, reflection, the interop
        /// TestService.
        .target(
            name: "SwitchboardGRPC",
            dependencies: [
                "SwitchboardProtos",
                "SwitchboardAPI",
                "SwitchboardBroker",
                "SwitchboardEngine",
                "SwitchboardJobs",
                "SwitchboardStore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        /// Settings and the assembly of a `serve` node.
        .target(
            name: "Switchboard",
            dependencies: [
                "SwitchboardAPI",
                "SwitchboardGRPC",
                "SwitchboardRTC",
                "SwitchboardBroker",
                "SwitchboardJobs",
                "SwitchboardUploads",
                "SwitchboardEngine",
                "SwitchboardStore",
                "SwitchboardSQLite",
                "SwitchboardPostgres",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        /// The edge: reverse proxy and L7 load balancer, L4 load balancer, forward proxy and tunnels.
        .target(
            name: "SwitchboardEdge",
            dependencies: [
                "SwitchboardEngine",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        /// A Swift client for the HTTP API, used by the CLI and the tests.
        .target(
            name: "SwitchboardClient",
            dependencies: [
                "SwitchboardProtos",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "switchboard",
            dependencies: [
                "Switchboard",
                "SwitchboardEdge",
                "SwitchboardEngine",
                "SwitchboardAPI",
                "SwitchboardClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "SwitchboardEngineTests",
            dependencies: [
                "SwitchboardEngine",
                "SwitchboardHTTP1",
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
            ]
        ),
        .testTarget(
            name: "SwitchboardBrokerTests",
            dependencies: ["SwitchboardBroker", "SwitchboardStore", "SwitchboardSQLite"]
        ),
        .testTarget(
            name: "SwitchboardJobsTests",
            dependencies: [
                "SwitchboardJobs", "SwitchboardBroker", "SwitchboardEngine", "SwitchboardStore", "SwitchboardSQLite",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .testTarget(
            name: "SwitchboardSTUNTests",
            dependencies: ["SwitchboardSTUN", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .testTarget(
            name: "SwitchboardRTCTests",
            dependencies: [
                "SwitchboardRTC", "SwitchboardSTUN",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "SwitchboardUploadsTests",
            dependencies: [
                "SwitchboardUploads", "SwitchboardBroker", "SwitchboardJobs", "SwitchboardStore", "SwitchboardSQLite",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        /// One conformance suite for every store backend: SQLite, and PostgreSQL at
        /// `SWITCHBOARD_TEST_POSTGRES` (the test command starts a throwaway cluster).
        .testTarget(
            name: "SwitchboardStoreTests",
            dependencies: [
                "SwitchboardStore", "SwitchboardSQLite", "SwitchboardPostgres",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "SwitchboardEdgeTests",
            dependencies: [
                "SwitchboardEdge", "SwitchboardEngine",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "SwitchboardTests",
            dependencies: [
                "Switchboard",
                "SwitchboardAPI",
                "SwitchboardClient",
                "SwitchboardEngine",
                "SwitchboardStore",
                "SwitchboardSQLite",
            ]
        ),
    ]
)
