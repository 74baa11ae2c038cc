import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Prometheus
import ServiceLifecycle
import SwitchboardEngine
import Synchronization
import UnixSignals

/// `switchboard edge`: every listener of the configuration, the active health checks, the admin
/// listener, and `SIGHUP` reloads. A reload that reads cleanly swaps in new routes and clusters for new
/// requests and connections (those under way finish on the old ones); a broken one is refused and the
/// running configuration stays. Listeners themselves (names, kinds, addresses) change only on restart.
public final class EdgeNode: Service, Sendable {
    public typealias ListeningCallback = @Sendable (_ listener: String, _ address: SocketAddress) async -> Void

    public let registry = PrometheusCollectorRegistry()
    private let path: String
    private let logger: Logger
    private let accessLog: AccessLog?
    private let onListening: ListeningCallback
    private let metrics: EdgeMetrics
    private let metricsFactory: PrometheusMetricsFactory
    private let eventLoopGroup = MultiThreadedEventLoopGroup.singleton
    private let current: Mutex<EdgeRuntime>
    /// The address each listener is bound to, by name, once it is.
    private let boundAddresses = Mutex<[String: SocketAddress]>([:])
    /// The slowest requests of all `http` listeners, for the console.
    private let slowRequests = SlowRequests()
    /// What each listening socket serves (its listener's name), for the console.
    private let listenerDirectory = ListenerDirectory()
    private let healthChecks = Mutex<Task<Void, Never>?>(nil)

    /// Reads and validates the configuration at `path`.
    /// - Throws: `EdgeConfigurationError` with one line per problem.
    public init(
        configurationPath path: String,
        logger: Logger,
        accessLog: AccessLog? = nil,
        onListening: @escaping ListeningCallback = { _, _ in }
    ) throws {
        self.path = path
        self.logger = logger
        self.accessLog = accessLog
        self.onListening = onListening
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets = EngineMetrics.histogramBuckets
        self.metricsFactory = factory
        let metrics = EdgeMetrics(factory: factory)
        self.metrics = metrics
        let configuration = try EdgeConfiguration.load(path: path)
        current = Mutex(
            EdgeRuntime(
                configuration,
                eventLoopGroup: eventLoopGroup,
                metrics: metrics,
                logger: logger,
                accessLog: accessLog
            )
        )
    }

    private var runtime: EdgeRuntime { current.withLock { $0 } }

    public func run() async throws {
        let configuration = runtime.configuration
        let drainTimeout = configuration.drainTimeout.flatMap(SettingValue.duration) ?? .seconds(10)
        startHealthChecks(runtime)
        // However the listeners end, the checks stop and the upstream clients are shut down.
        let outcome: Result<Void, any Error>
        do {
            try await withThrowingDiscardingTaskGroup { group in
                for listener in configuration.listeners {
                    group.addTask { try await self.serve(listener, drainTimeout: drainTimeout) }
                }
                if let admin = configuration.admin {
                    group.addTask { try await self.serveAdmin(admin) }
                }
                group.addTask { await self.reloadOnHangUp() }
            }
            outcome = .success(())
        } catch {
            outcome = .failure(error)
        }
        healthChecks.withLock { $0?.cancel() }
        await runtime.clients.shutdown()
        try outcome.get()
    }

    // MARK: Listeners

    private func serve(_ listener: EdgeConfiguration.Listener, drainTimeout: TimeAmount) async throws {
        let (host, port) = SettingValue.hostAndPort(listener.listen)!
        let model = listener.model
        let name = listener.name
        let onListening: @Sendable (String, SocketAddress) async -> Void = { [self] name, address in
            boundAddresses.withLock { $0[name] = address }
            await self.onListening(name, address)
        }
        switch listener.kind {
        case .http:
            var engine = EngineConfiguration()
            (engine.host, engine.port, engine.executionModel, engine.name) = (host, port, model, name)
            engine.drainTimeout = drainTimeout
            engine.limits.maxBodyBytes = listener.maxBodyBytes ?? 1 << 30
            engine.tls = try listener.tls.map { try Self.tlsListener(host: host, port: port, files: $0) }
            engine.servesCleartext = listener.tls == nil
            let relay = UpgradeRelay { [self] in reverseProxy(name) }
            let server = HTTPServer(
                configuration: engine,
                responder: CurrentReverseProxy(node: self, listener: name),
                metrics: EngineMetrics(
                    factory: metricsFactory,
                    slowRequests: slowRequests,
                    listeners: listenerDirectory
                ),
                logger: logger,
                accessLog: accessLog,
                protocolSwitches: [relay.protocolSwitch],
                onListening: { await onListening(name, $0) }
            )
            try await server.run()
        case .tcp, .forward:
            var options = ListeningSockets.Options()
            options.allowRemoteHalfClosure = true  // a tunnel's sides end one at a time
            let listening = ListeningSockets(executionModel: model, group: eventLoopGroup, options: options)
            let sockets = try await listening.bind(host: host, port: port) { [self] channel in
                initialize(channel, for: listener)
            }
            listenerDirectory.add(port: sockets.address.port ?? 0, listening.listing(serves: name))
            await onListening(name, sockets.address)
            try? await gracefulShutdown()
            await sockets.drain(timeout: drainTimeout)
        }
    }

    /// A new connection of a `tcp` or `forward` listener, set up with the current configuration.
    private func initialize(_ channel: any Channel, for listener: EdgeConfiguration.Listener) -> EventLoopFuture<Void> {
        let runtime = self.runtime
        if listener.kind == .tcp {
            return runtime.tcpProxies[listener.name]!.initialize(channel)
        }
        if let metrics = runtime.forwardMetrics[listener.name] {
            metrics.accepted.increment()
            metrics.active.increment()
            channel.closeFuture.whenComplete { _ in metrics.active.decrement() }
        }
        return channel.eventLoop.makeCompletedFuture {
            let encoder = HTTPResponseEncoder()
            let decoder = ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes))
            let pipeline = channel.pipeline.syncOperations
            try pipeline.addHandler(encoder)
            try pipeline.addHandler(decoder)
            try pipeline.addHandler(
                ForwardProxyHandler(
                    rules: runtime.forwardRules[listener.name]!,
                    encoder: encoder,
                    decoder: decoder,
                    logger: logger,
                    accessLog: accessLog
                )
            )
        }
    }

    /// The admin listener: health, metrics and the console (`OperationsRoutes`), and `GET /v1/edge`, the
    /// listeners, routes and upstreams as they stand (`EdgeStatus`). It is for operators: bind it where
    /// only they reach.
    private func serveAdmin(_ address: String) async throws {
        let (host, port) = SettingValue.hostAndPort(address)!
        var router = Router(defaultMaxBodyBytes: 1024)
        let registry = self.registry
        OperationsRoutes(
            emitMetrics: { registry.emit(into: &$0) },
            engine: nil,
            slowRequests: slowRequests,
            listeners: listenerDirectory,
            authorizeAdministrator: {}
        ).register(in: &router)
        router.addImmediate(.GET, "/v1/whoami") { _ in
            .json(ByteBuffer(string: #"{"node":"edge","authentication":false,"admin":true}"#))
        }
        router.addImmediate(.GET, "/v1/edge") { [self] _ in
            .json(
                ByteBuffer(bytes: EdgeStatus(runtime: runtime, boundAddresses: boundAddresses.withLock { $0 }).json())
            )
        }
        var engine = EngineConfiguration()
        (engine.host, engine.port, engine.name) = (host, port, "admin")
        let onListening = self.onListening
        let server = HTTPServer(
            configuration: engine,
            responder: router,
            metrics: EngineMetrics(factory: metricsFactory, listeners: listenerDirectory),
            logger: logger,
            onListening: { await onListening("admin", $0) }
        )
        try await server.run()
    }

    private static func tlsListener(host: String, port: Int, files: EdgeConfiguration.TLSFiles) throws -> TLSListener {
        TLSListener(
            host: host,
            port: port,
            certificateChain: try NIOSSLCertificate.fromPEMFile(files.cert),
            privateKey: try NIOSSLPrivateKey(file: files.key, format: .pem)
        )
    }

    // MARK: Health checks and reloads

    private func startHealthChecks(_ runtime: EdgeRuntime) {
        let task = Task {
            await withDiscardingTaskGroup { group in
                for checker in runtime.healthCheckers {
                    group.addTask { await checker.run() }
                }
            }
        }
        healthChecks.withLock { previous in
            previous?.cancel()
            previous = task
        }
    }

    private func reloadOnHangUp() async {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            reload()
        }
    }

    /// Reads the file again and swaps in the new runtime, or keeps the old one and says why not.
    func reload() {
        let configuration: EdgeConfiguration
        do {
            configuration = try EdgeConfiguration.load(path: path)
        } catch {
            logger.error("Reload refused, the running configuration stays", metadata: ["problems": "\(error)"])
            return
        }
        let next = EdgeRuntime(
            configuration,
            eventLoopGroup: eventLoopGroup,
            metrics: metrics,
            logger: logger,
            accessLog: accessLog
        )
        let previous = runtime
        guard next.listenerShape == previous.listenerShape else {
            logger.error("Reload refused: listeners change only on restart; the running configuration stays")
            Task { await next.clients.shutdown() }
            return
        }
        current.withLock { $0 = next }
        startHealthChecks(next)
        logger.notice("Configuration reloaded", metadata: ["path": "\(path)"])
        // Requests under way still use the old clients; they are closed once those have had time to end.
        Task {
            try? await Task.sleep(for: .seconds(600))
            await previous.clients.shutdown()
        }
    }

    fileprivate func reverseProxy(_ listener: String) -> ReverseProxy {
        runtime.reverseProxies[listener]!
    }
}

/// The reverse proxy of the current configuration, looked up for every request so that a reload
/// reaches connections that are already open from their next request on.
private struct CurrentReverseProxy: HTTPResponder {
    let node: EdgeNode
    let listener: String

    func route(_ head: HTTPRequestHead) -> RouteMatch {
        node.reverseProxy(listener).route(head)
    }
}
