import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import ServiceLifecycle
import SwitchboardAPI
import SwitchboardBroker
import SwitchboardStore

/// The gRPC listener of a `serve` node: grpc-swift-2 on its HTTP/2 transport (h2c), on a port of its
/// own, serving `todoPackage.Todo`, `switchboard.v1.Topics`, `switchboard.v1.Jobs` and
/// `grpc.health.v1.Health`.
public struct GRPCListener: Service {
    public struct Configuration: Sendable {
        public var host: String
        public var port: Int
        /// Largest request message the transport takes; a larger one resets its stream.
        public var maxRequestBytes = 4 * 1024 * 1024
        /// Largest topic message data; over it RESOURCE_EXHAUSTED (as `--max-message-bytes`).
        public var maxTopicMessageBytes = 1 << 20

        public init(host: String = "127.0.0.1", port: Int = 50051) {
            self.host = host
            self.port = port
        }
    }

    /// Called once the listener is bound, with its port.
    public typealias ListeningCallback = @Sendable (Int) -> Void

    private let server: GRPCServer<HTTP2ServerTransport.Posix>
    private let health: HealthService
    private let logger: Logger
    private let onListening: ListeningCallback

    public init(
        configuration: Configuration,
        broker: Broker,
        jobs: JobsAPI,
        todos: any TodoStore,
        authentication: Authentication?,
        logger: Logger,
        onListening: @escaping ListeningCallback = { _ in }
    ) {
        var transport = HTTP2ServerTransport.Posix.Config.defaults
        transport.rpc.maxRequestPayloadSize = configuration.maxRequestBytes
        transport.compression.enabledAlgorithms = .all
        let authorizer = CallAuthorizer(authentication: authentication)
        let health = HealthService()
        self.health = health
        self.server = GRPCServer(
            transport: .http2NIOPosix(
                address: .ipv4(host: configuration.host, port: configuration.port),
                transportSecurity: .plaintext,
                config: transport
            ),
            services: [
                TodoService(store: todos, authorizer: authorizer),
                TopicsService(
                    broker: broker,
                    authorizer: authorizer,
                    maxMessageBytes: configuration.maxTopicMessageBytes
                ),
                JobsService(jobs: jobs.jobs, api: jobs, authorizer: authorizer),
                health,
            ]
        )
        self.logger = logger
        self.onListening = onListening
    }

    public func run() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask {
                try await withGracefulShutdownHandler {
                    try await server.serve()
                } onGracefulShutdown: {
                    health.beginShutdown()
                    server.beginGracefulShutdown()
                }
            }
            if let address = try await server.listeningAddress?.ipv4 {
                logger.info("gRPC listening", metadata: ["grpc_address": "\(address.host):\(address.port)"])
                onListening(address.port)
            }
        }
    }
}
