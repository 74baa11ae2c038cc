import Logging
import Metrics
import NIOCore
import Prometheus
import ServiceLifecycle
import SwitchboardAPI
import SwitchboardBroker
import SwitchboardEngine
import SwitchboardStore

/// One `serve` node: the store, the worker pool, the broker and the HTTP server, run as one
/// `ServiceGroup` that stops gracefully on SIGTERM or SIGINT.
public final class ServeNode: Sendable {
    public let settings: ServeSettings
    public let store: SQLiteStore
    public let workers: WorkerPool
    public let broker: Broker
    /// The registry behind `/metrics`.
    public let registry: PrometheusCollectorRegistry
    private let group: ServiceGroup

    /// Opens the store and assembles the services; nothing listens until `run()`.
    public init(
        settings: ServeSettings,
        logger: Logger,
        onListening: @escaping HTTPServer.ListeningCallback = { _ in }
    ) throws {
        self.settings = settings
        self.store = try SQLiteStore(directory: settings.dataDirectory, durability: settings.durability)
        self.workers = WorkerPool(threads: settings.workerThreads)
        self.registry = PrometheusCollectorRegistry()
        let metrics = PrometheusMetricsFactory(registry: registry)
        self.broker = Broker(store: store, configuration: settings.broker, metrics: metrics)
        var router = Router(defaultMaxBodyBytes: settings.engine.limits.maxBodyBytes)
        OperationsAPI(store: store, registry: registry).register(in: &router)
        let topics = TopicsAPI(broker: broker, configuration: settings.topics)
        topics.register(in: &router)

        var accessLogger = logger
        accessLogger[metadataKey: "log"] = "access"
        let server = HTTPServer(
            configuration: settings.engine,
            responder: router,
            metrics: EngineMetrics(factory: metrics),
            logger: logger,
            accessLogger: settings.accessLog ? accessLogger : nil,
            webSockets: [topics.webSocketEndpoint],
            onListening: onListening
        )
        logger.info("Store open", metadata: ["kind": "\(store.kind)", "path": "\(store.path)"])
        self.group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                // Stopped in reverse: the broker first, ending subscriptions so that streaming responses
                // finish, then the server drains, then the pool and the store.
                services: [
                    .init(service: store), .init(service: workers), .init(service: server), .init(service: broker),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
    }

    /// Runs until graceful shutdown completes.
    public func run() async throws {
        try await group.run()
    }

    /// Starts graceful shutdown, as SIGTERM does.
    public func shutdown() async {
        await group.triggerGracefulShutdown()
    }
}
