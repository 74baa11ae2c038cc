import Logging
import NIOCore
import NIOExtras
import NIOHTTP1
import NIOPosix
import NIOSSL
import ServiceLifecycle

/// The HTTP server (HTTP/1.1, and HTTP/2 over TLS or with prior knowledge): binds its listeners for the configured execution model, serves each connection
/// in its own task, and on graceful shutdown closes the listeners at once, lets requests in flight
/// finish within the drain timeout, then closes what is left.
public final class HTTPServer: Service, Sendable {
    public typealias ListeningCallback = @Sendable (SocketAddress) async -> Void

    private let configuration: EngineConfiguration
    private let responder: any HTTPResponder
    private let metrics: EngineMetrics
    private let logger: Logger
    private let accessLogger: Logger?
    private let onListening: ListeningCallback
    private let webSockets: [WebSocketEndpoint]
    private let protocolSwitches: [ProtocolSwitch]

    /// - Parameters:
    ///   - accessLogger: where one line per request goes; `nil` turns the access log off.
    ///   - webSockets: paths upgraded to WebSocket.
    ///   - protocolSwitches: other upgrades, taken over whole (the edge's WebSocket relay).
    ///   - onListening: called once with the bound address (the real port when 0 was asked for).
    public init(
        configuration: EngineConfiguration,
        responder: any HTTPResponder,
        metrics: EngineMetrics,
        logger: Logger,
        accessLogger: Logger? = nil,
        webSockets: [WebSocketEndpoint] = [],
        protocolSwitches: [ProtocolSwitch] = [],
        onListening: @escaping ListeningCallback = { _ in }
    ) {
        self.webSockets = webSockets
        self.protocolSwitches = protocolSwitches
        self.configuration = configuration
        self.responder = responder
        self.metrics = metrics
        self.logger = logger
        self.accessLogger = accessLogger
        self.onListening = onListening
    }

    public func run() async throws {
        // NIO's shared event loops serve when their number fits; another count gets its own group.
        let shared = MultiThreadedEventLoopGroup.singleton
        switch configuration.executionModel {
        case .single:
            try await serve(on: shared.next())
        case _ where configuration.eventLoops == System.coreCount:
            try await serve(on: shared)
        default:
            let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, configuration.eventLoops))
            do {
                try await serve(on: group)
            } catch {
                try? await group.shutdownGracefully()
                throw error
            }
            try await group.shutdownGracefully()
        }
    }

    /// Listens until graceful shutdown (or cancellation), then drains.
    private func serve(on group: any EventLoopGroup) async throws {
        let registry = ConnectionRegistry(maxConnections: configuration.limits.maxConnections)
        var listeners = configuration.servesCleartext ? try await bindListeners(on: group, registry: registry) : []
        for address in Set(listeners.map(\.address)) {
            logger.info(
                "Listening",
                metadata: [
                    "address": "\(address.hostAndPort)",
                    "execution_model": "\(configuration.executionModel.rawValue)",
                    "listeners": "\(listeners.count)",
                ]
            )
            await onListening(address)
        }
        if let tls = configuration.tls {
            let listener = try await bind(
                group: group,
                host: tls.host,
                port: tls.port,
                registry: registry,
                tls: try tls.makeContext()
            )
            logger.info("Listening with TLS", metadata: ["tls_address": "\(listener.address.hostAndPort)"])
            if !configuration.servesCleartext {
                await onListening(listener.address)
            }
            listeners.append(listener)
        }
        let cancelled = (try? await gracefulShutdown()) == nil
        logger.info("Shutting down: listeners closed, draining connections")
        await drain(listeners, registry: registry, timeout: cancelled ? .zero : configuration.drainTimeout)
    }

    /// Closes the listeners at once, lets open connections finish the request they are serving, and
    /// closes whatever is still open when `timeout` passes.
    private func drain(_ listeners: [Listener], registry: ConnectionRegistry, timeout: TimeAmount) async {
        guard let loop = listeners.first?.channel.eventLoop else { return }
        let drained = listeners.map { listener in
            let promise = listener.channel.eventLoop.makePromise(of: Void.self)
            listener.quiescer.initiateShutdown(promise: promise)
            return promise.futureResult
        }
        let logger = self.logger
        let deadline = loop.scheduleTask(in: timeout) {
            if registry.openConnections > 0 {
                logger.warning("Drain timeout expired: closing the remaining connections")
                registry.closeAll()
            }
        }
        try? await EventLoopFuture.andAllComplete(drained, on: loop).get()
        deadline.cancel()
    }

    /// Binds one listener, or one per event loop with `SO_REUSEPORT`.
    private func bindListeners(on group: any EventLoopGroup, registry: ConnectionRegistry) async throws -> [Listener] {
        guard configuration.executionModel == .reuseport else {
            return [
                try await bind(group: group, host: configuration.host, port: configuration.port, registry: registry)
            ]
        }
        var listeners: [Listener] = []
        var port = configuration.port
        for loop in group.makeIterator() {
            let listener = try await bind(group: loop, host: configuration.host, port: port, registry: registry)
            port = listener.address.port ?? port
            listeners.append(listener)
        }
        return listeners
    }

    private func bind(
        group: any EventLoopGroup,
        host: String,
        port: Int,
        registry: ConnectionRegistry,
        tls: NIOSSLContext? = nil
    ) async throws -> Listener {
        let quiescer = ServerQuiescingHelper(group: group)
        let pipeline = ConnectionPipeline(
            limits: configuration.limits,
            http2: configuration.http2,
            crossOrigin: configuration.crossOrigin,
            responder: responder,
            metrics: metrics,
            logger: logger,
            accessLogger: accessLogger,
            webSockets: webSockets,
            protocolSwitches: protocolSwitches,
            tls: tls
        )
        pipeline.warmUp()
        var bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: Int32(configuration.backlog))
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(registry.makeHandler())
                    try channel.pipeline.syncOperations.addHandler(quiescer.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try pipeline.configure(channel) }
            }
            .childChannelOption(.socketOption(.tcp_nodelay), value: configuration.tcpNoDelay ? 1 : 0)
            .childChannelOption(.allowRemoteHalfClosure, value: false)
        if configuration.executionModel == .reuseport {
            bootstrap = bootstrap.serverChannelOption(
                ChannelOptions.socket(SocketOptionLevel(SOL_SOCKET), SO_REUSEPORT),
                value: 1
            )
        }
        if let queue = configuration.tcpFastOpenQueue {
            bootstrap = bootstrap.serverChannelOption(
                ChannelOptions.socket(SocketOptionLevel(IPPROTO_TCP), TCP_FASTOPEN),
                value: SocketOptionValue(queue)
            )
        }
        let channel = try await bootstrap.bind(host: host, port: port).get()
        guard let address = channel.localAddress else {
            throw ChannelError.unknownLocalAddress
        }
        return Listener(channel: channel, quiescer: quiescer, address: address)
    }
}

/// One bound listening socket and the helper that quiesces its connections.
private struct Listener: Sendable {
    let channel: any Channel
    let quiescer: ServerQuiescingHelper
    let address: SocketAddress
}

extension SocketAddress {
    /// `127.0.0.1:8080` or `[::1]:8080`, as users write addresses.
    public var hostAndPort: String {
        let host = ipAddress ?? "\(self)"
        let port = port.map(String.init) ?? "?"
        if case .v6 = self {
            return "[\(host)]:\(port)"
        }
        return "\(host):\(port)"
    }
}
