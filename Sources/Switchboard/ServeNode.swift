import Foundation
import Logging
import Metrics
import NIOCore
import Prometheus
import ServiceLifecycle
import SwitchboardAPI
import SwitchboardBroker
import SwitchboardEngine
import SwitchboardGRPC
import SwitchboardJobs
import SwitchboardPostgres
import SwitchboardRTC
import SwitchboardSQLite
import SwitchboardStore
import SwitchboardUploads

/// One `serve` node: the store, the worker pool, the broker, the job queue and its built-in workers,
/// idempotency and the HTTP server, run as one `ServiceGroup` that stops gracefully on SIGTERM or SIGINT.
public final class ServeNode: Sendable {
    public let settings: ServeSettings
    public let store: any NodeStore
    public let workers: WorkerPool
    public let broker: Broker
    public let jobs: Jobs
    /// The registry behind `/metrics`.
    public let registry: PrometheusCollectorRegistry
    /// Every route of the HTTP API.
    public let routes: [Route]
    private let group: ServiceGroup

    /// Opens the store and assembles the services; nothing listens until `run()`.
    public init(
        settings: ServeSettings,
        logger: Logger,
        onListening: @escaping HTTPServer.ListeningCallback = { _ in },
        onGRPCListening: @escaping @Sendable (_ port: Int) -> Void = { _ in }
    ) async throws {
        self.settings = settings
        let store = try await Self.openStore(settings, logger: logger)
        self.store = store
        self.workers = WorkerPool(threads: settings.workerThreads)
        self.registry = PrometheusCollectorRegistry()
        var metrics = PrometheusMetricsFactory(registry: registry)
        metrics.durationHistogramBuckets = EngineMetrics.histogramBuckets
        self.broker = Broker(store: store, configuration: settings.broker, metrics: metrics)
        self.jobs = Jobs(store: store, broker: broker, configuration: settings.jobs, logger: logger)
        let uploadsDirectory = settings.resolvedUploadsDirectory
        let handlers = JobHandlers([
            SleepHandler(), SHA256Handler(workers: workers, uploadsDirectory: uploadsDirectory), WebhookHandler(),
        ])
        let runner = JobRunner(jobs: jobs, handlers: handlers, queues: settings.jobQueues, logger: logger)

        var router = Router(defaultMaxBodyBytes: settings.engine.limits.maxBodyBytes)
        let (slowRequests, listeners) = (SlowRequests(), ListenerDirectory())
        OperationsAPI(
            store: store,
            registry: registry,
            engine: settings.engine,
            slowRequests: slowRequests,
            listeners: listeners
        ).register(in: &router)
        let topics = TopicsAPI(broker: broker, configuration: settings.topics)
        topics.register(in: &router)
        var jobsConfiguration = JobsAPI.Configuration()
        jobsConfiguration.builtInQueues = Set(settings.jobQueues.keys)
        let jobsAPI = JobsAPI(jobs: jobs, handlers: handlers, topics: topics, configuration: jobsConfiguration)
        jobsAPI.register(in: &router)
        let uploads = try Uploads(
            store: store,
            directory: uploadsDirectory,
            broker: broker,
            jobs: jobs,
            jobTypes: Set(handlers.types),
            configuration: settings.uploads,
            logger: logger
        )
        UploadsAPI(uploads: uploads).register(in: &router)
        let iceServers = ICEServers(
            turn: settings.stun?.turn,
            credentialLifetime: settings.rtc.turnCredentialLifetime
        )
        let rtc = RTCAPI(
            rooms: SignalingRooms(maxPeersPerRoom: settings.rtc.maxPeersPerRoom, metrics: metrics),
            iceServers: iceServers,
            configuration: settings.rtc
        )
        rtc.register(in: &router)
        self.routes = router.routes
        let idempotency = Idempotency(
            wrapping: router,
            store: store,
            configuration: settings.idempotency,
            logger: logger
        )
        // Outermost, so that idempotency keys and every handler see who is asking: a verified token's
        // principal, or with authentication off, explicitly anyone.
        let authentication =
            settings.authentication.isEnabled
            ? try await Authentication(wrapping: idempotency, configuration: settings.authentication) : nil
        let access: any HTTPResponder = authentication ?? OpenAccess(wrapping: idempotency)

        let accessLog = settings.accessLog ? AccessLog(label: logger.label) : nil
        let server = HTTPServer(
            configuration: settings.engine,
            responder: access,
            metrics: EngineMetrics(factory: metrics, slowRequests: slowRequests, listeners: listeners),
            logger: logger,
            accessLog: accessLog,
            webSockets: [
                topics.webSocketEndpoint(authentication: authentication),
                rtc.webSocketEndpoint(authentication: authentication),
            ],
            onListening: onListening
        )
        var grpc: GRPCListener?
        if var configuration = settings.grpc {
            configuration.maxTopicMessageBytes = settings.topics.maxMessageBytes
            configuration.idempotencyRetention = settings.idempotency.retention
            configuration.maxConcurrentStreams = settings.engine.http2.maxConcurrentStreams
            grpc = GRPCListener(
                configuration: configuration,
                broker: broker,
                jobs: jobsAPI,
                todos: store,
                idempotencyStore: store,
                authentication: authentication,
                metrics: metrics,
                accessLog: accessLog,
                logger: logger,
                onListening: { port, tls in
                    listeners.add(port: port, .init(serves: tls ? "grpc (TLS)" : "grpc"))
                    if !tls { onGRPCListening(port) }
                }
            )
        }
        let stun = settings.stun.map { configuration in
            STUNListener(configuration: configuration, metrics: metrics, logger: logger) { port, tlsPort in
                listeners.add(port: port, .init(serves: "stun/turn"))
                if let tlsPort { listeners.add(port: tlsPort, .init(serves: "turns")) }
                iceServers.listening(host: configuration.host, port: port, tlsPort: tlsPort)
            }
        }
        // Another node's commits wake this node's subscribers and workers.
        let (broker, jobs) = (self.broker, self.jobs)
        let relay = (store as? any SharedStore).map { shared in
            RemoteChangeRelay(changes: shared.remoteChanges, broker: broker, jobs: jobs)
        }
        // Stopped in reverse: the broker first, ending subscriptions so that streaming responses finish,
        // then the server drains, the built-in workers finish their attempts, and the lease sweeper, the
        // pool and the store stop last.
        let optional: [(any Service)?] = [grpc, stun]
        let services: [any Service] =
            [store, workers, idempotency] + (relay.map { [$0] } ?? []) + [uploads, jobs, runner, server]
            + optional.compactMap { $0 } + [broker]
        self.group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) },
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
    }

    /// Opens the store the settings name: SQLite in the data directory, or the shared PostgreSQL.
    private static func openStore(_ settings: ServeSettings, logger: Logger) async throws -> any NodeStore {
        switch settings.store {
        case .sqlite:
            let store = try SQLiteStore(directory: settings.dataDirectory, durability: settings.durability)
            logger.info("Store open", metadata: ["kind": "sqlite", "path": "\(store.path)"])
            return store
        case .postgres(let url):
            let store = try await PostgresStore(url: url, logger: logger)
            logger.info("Store open", metadata: ["kind": "postgres", "node": "\(store.processOwner)"])
            return store
        }
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

/// Hands the commits other nodes announce to this node's broker and job queue, until graceful shutdown.
struct RemoteChangeRelay: Service {
    let changes: AsyncStream<RemoteChange>
    let broker: Broker
    let jobs: Jobs

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            for await change in changes {
                switch change {
                case .appended(let topic, _): broker.remoteAppend(topic: topic)
                case .queued(let queue, let count): jobs.remoteQueued(queue: queue, count: count)
                case .missed: broker.remoteAppend(topic: nil)
                }
            }
        }
    }
}
