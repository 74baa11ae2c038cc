import CoreMetrics
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import ServiceLifecycle
import SwitchboardAPI
import SwitchboardBroker
import SwitchboardEngine
import SwitchboardProtos
import SwitchboardStore

/// The gRPC listeners of a `serve` node: grpc-swift-2 on its HTTP/2 transport, h2c on a port of its own
/// and TLS on another once a certificate is set, serving `todoPackage.Todo`, `switchboard.v1.Topics`,
/// `switchboard.v1.Jobs`, `grpc.health.v1.Health`, server reflection and, when asked, the interop
/// `grpc.testing.TestService`.
public struct GRPCListener: Service {
    public struct Configuration: Sendable {
        public var host: String
        public var port: Int
        /// Largest request message the transport takes; a larger one resets its stream.
        public var maxRequestBytes = 4 * 1024 * 1024
        /// Calls a client may have open at once on one connection (`SETTINGS_MAX_CONCURRENT_STREAMS`, as
        /// `--http2-max-streams`); clients queue the rest.
        public var maxConcurrentStreams = 100
        /// Largest topic message data; over it RESOURCE_EXHAUSTED (as `--max-message-bytes`).
        public var maxTopicMessageBytes = 1 << 20
        /// How long `idempotency-key` answers are kept (as `--idempotency-retention`).
        public var idempotencyRetention: Duration = .seconds(24 * 3600)
        /// Idle time after which the server pings a connection; a ping unanswered for 20 s closes it.
        public var keepalive: Duration = .seconds(2 * 3600)
        /// Whether `grpc.testing.TestService` is served, for interop runs.
        public var interop = false
        /// The TLS listener and its certificate; `nil` for none.
        public var tls: TLS?

        public struct TLS: Sendable {
            public var host: String
            public var port: Int
            /// PEM files of the certificate chain and its private key.
            public var certificateFile: String
            public var keyFile: String

            public init(host: String, port: Int, certificateFile: String, keyFile: String) {
                self.host = host
                self.port = port
                self.certificateFile = certificateFile
                self.keyFile = keyFile
            }
        }

        public init(host: String = "127.0.0.1", port: Int = 50051) {
            self.host = host
            self.port = port
        }
    }

    /// Called once each listener is bound, with its port and whether it is the TLS one.
    public typealias ListeningCallback = @Sendable (_ port: Int, _ tls: Bool) -> Void

    private let servers: [(server: GRPCServer<HTTP2ServerTransport.Posix>, name: String)]
    private let health: HealthService
    private let logger: Logger
    private let onListening: ListeningCallback

    public init(
        configuration: Configuration,
        broker: Broker,
        jobs: JobsAPI,
        todos: any TodoStore,
        idempotencyStore: any IdempotencyStore,
        authentication: Authentication?,
        metrics: any MetricsFactory,
        accessLog: AccessLog?,
        logger: Logger,
        onListening: @escaping ListeningCallback = { _, _ in }
    ) {
        var transport = HTTP2ServerTransport.Posix.Config.defaults
        transport.rpc.maxRequestPayloadSize = configuration.maxRequestBytes
        transport.http2.maxConcurrentStreams = configuration.maxConcurrentStreams
        transport.compression.enabledAlgorithms = .all
        transport.connection.keepalive.time = configuration.keepalive
        let authorizer = CallAuthorizer(authentication: authentication)
        let idempotency = IdempotentCalls(store: idempotencyStore, retention: configuration.idempotencyRetention)
        let health = HealthService()
        self.health = health
        var services: [any RegistrableRPCService] = [
            TodoService(store: todos, authorizer: authorizer),
            TopicsService(
                broker: broker,
                authorizer: authorizer,
                maxMessageBytes: configuration.maxTopicMessageBytes,
                idempotency: idempotency
            ),
            JobsService(jobs: jobs.jobs, api: jobs, authorizer: authorizer, idempotency: idempotency),
            health,
        ]
        var served = [
            TodoPackage_Todo.descriptor, Switchboard_V1_Topics.descriptor, Switchboard_V1_Jobs.descriptor,
            Grpc_Health_V1_Health.descriptor, Grpc_Reflection_V1_ServerReflection.descriptor,
        ]
        if configuration.interop {
            services.append(InteropService())
            served.append(Grpc_Testing_TestService.descriptor)
        }
        services.append(ReflectionService(services: served))
        let interceptors = [CallRecorder(factory: metrics, accessLog: accessLog)]
        var servers = [
            (
                GRPCServer(
                    transport: .http2NIOPosix(
                        address: Self.address(configuration.host, configuration.port),
                        transportSecurity: .plaintext,
                        config: transport
                    ),
                    services: services,
                    interceptors: interceptors
                ),
                "grpc_address"
            )
        ]
        if let tls = configuration.tls {
            let security = HTTP2ServerTransport.Posix.TransportSecurity.tls(
                certificateChain: [.file(path: tls.certificateFile, format: .pem)],
                privateKey: .file(path: tls.keyFile, format: .pem)
            )
            servers.append(
                (
                    GRPCServer(
                        transport: .http2NIOPosix(
                            address: Self.address(tls.host, tls.port),
                            transportSecurity: security,
                            config: transport
                        ),
                        services: services,
                        interceptors: interceptors
                    ),
                    "grpc_tls_address"
                )
            )
        }
        self.servers = servers
        self.logger = logger
        self.onListening = onListening
    }

    public func run() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            for (server, _) in servers {
                group.addTask {
                    try await withGracefulShutdownHandler {
                        try await server.serve()
                    } onGracefulShutdown: {
                        health.beginShutdown()
                        server.beginGracefulShutdown()
                    }
                }
            }
            for (index, (server, name)) in servers.enumerated() {
                let address = try await server.listeningAddress
                guard
                    let (host, port) = address?.ipv4.map({ ($0.host, $0.port) })
                        ?? address?.ipv6.map({ ("[\($0.host)]", $0.port) })
                else { continue }
                logger.info("gRPC listening", metadata: [name: "\(host):\(port)"])
                onListening(port, index > 0)
            }
        }
    }

    /// An IPv6 address when `host` is one (`::1`), else IPv4.
    private static func address(_ host: String, _ port: Int) -> GRPCNIOTransportCore.SocketAddress {
        host.contains(":") ? .ipv6(host: host, port: port) : .ipv4(host: host, port: port)
    }
}
