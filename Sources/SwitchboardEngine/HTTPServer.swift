import Logging
import NIOCore
import NIOExtras
import NIOHTTP1
import NIOPosix
import NIOSSL
import ServiceLifecycle

/// The HTTP server (HTTP/1.1, and HTTP/2 over TLS or with prior knowledge): binds its listeners for the
/// configured execution model, serves each connection on its event loop, and on graceful shutdown closes
/// the listeners at once, lets requests in flight finish within the drain timeout, then closes what is left.
public final class HTTPServer: Service, Sendable {
    public typealias ListeningCallback = @Sendable (SocketAddress) async -> Void

    private let configuration: EngineConfiguration
    private let responder: any HTTPResponder
    private let metrics: EngineMetrics
    private let logger: Logger
    private let accessLog: AccessLog?
    private let onListening: ListeningCallback
    private let webSockets: [WebSocketEndpoint]
    private let protocolSwitches: [ProtocolSwitch]

    /// - Parameters:
    ///   - accessLog: where one line per request goes; `nil` turns the access log off.
    ///   - webSockets: paths upgraded to WebSocket.
    ///   - protocolSwitches: other upgrades, taken over whole (the edge's WebSocket relay).
    ///   - onListening: called once with the bound address (the real port when 0 was asked for).
    public init(
        configuration: EngineConfiguration,
        responder: any HTTPResponder,
        metrics: EngineMetrics,
        logger: Logger,
        accessLog: AccessLog? = nil,
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
        self.accessLog = accessLog
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
        // One registry: `--max-connections` caps the cleartext and TLS listeners together.
        let connections = ConnectionRegistry(maxConnections: configuration.limits.maxConnections)
        var bound: [BoundSockets] = []
        if configuration.servesCleartext {
            let cleartext = try await bind(group: group, connections: connections, tls: nil)
            logger.info(
                "Listening",
                metadata: [
                    "address": "\(cleartext.address.hostAndPort)",
                    "execution_model": "\(configuration.executionModel.rawValue)",
                    "listeners": "\(cleartext.count)",
                ]
            )
            await onListening(cleartext.address)
            bound.append(cleartext)
        }
        if let tls = configuration.tls {
            let secure = try await bind(group: group, connections: connections, tls: tls)
            logger.info("Listening with TLS", metadata: ["tls_address": "\(secure.address.hostAndPort)"])
            if !configuration.servesCleartext {
                await onListening(secure.address)
            }
            bound.append(secure)
        }
        let cancelled = (try? await gracefulShutdown()) == nil
        logger.info("Shutting down: listeners closed, draining connections")
        let logger = self.logger
        let timeout = cancelled ? .zero : configuration.drainTimeout
        await withTaskGroup(of: Void.self) { group in
            for sockets in bound {
                group.addTask {
                    await sockets.drain(timeout: timeout) { open in
                        logger.warning(
                            "Drain timeout expired: closing the remaining connections",
                            metadata: ["connections": "\(open)"]
                        )
                    }
                }
            }
        }
    }

    /// Binds the cleartext listener, or the TLS one, for the configured execution model.
    private func bind(
        group: any EventLoopGroup,
        connections: ConnectionRegistry,
        tls: TLSListener?
    ) async throws -> BoundSockets {
        let pipeline = ConnectionPipeline(
            limits: configuration.limits,
            http2: configuration.http2,
            crossOrigin: configuration.crossOrigin,
            responder: responder,
            metrics: metrics,
            logger: logger,
            accessLog: accessLog,
            webSockets: webSockets,
            protocolSwitches: protocolSwitches,
            tls: try tls?.makeContext()
        )
        pipeline.warmUp()
        var options = ListeningSockets.Options()
        options.backlog = Int32(configuration.backlog)
        options.tcpNoDelay = configuration.tcpNoDelay
        options.tcpFastOpenQueue = configuration.tcpFastOpenQueue
        // The TLS listener has one socket: reuseport shards only the cleartext one.
        let model = tls == nil ? configuration.executionModel : .sharedListener
        let sockets = ListeningSockets(executionModel: model, group: group, options: options, connections: connections)
        let bound = try await sockets.bind(
            host: tls?.host ?? configuration.host,
            port: tls?.port ?? configuration.port,
        ) { channel in
            channel.eventLoop.makeCompletedFuture { try pipeline.configure(channel) }
        }
        metrics.listeners.add(
            port: bound.address.port ?? 0,
            sockets.listing(serves: configuration.name + (tls == nil ? "" : " (TLS)"))
        )
        return bound
    }
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
