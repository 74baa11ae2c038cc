import Logging
import NIOCore
import NIOExtras
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// The HTTP/1.1 server: binds its listeners for the configured execution model, serves each connection
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

    /// - Parameters:
    ///   - accessLogger: where one line per request goes; `nil` turns the access log off.
    ///   - onListening: called once with the bound address (the real port when 0 was asked for).
    public init(
        configuration: EngineConfiguration,
        responder: any HTTPResponder,
        metrics: EngineMetrics,
        logger: Logger,
        accessLogger: Logger? = nil,
        onListening: @escaping ListeningCallback = { _ in }
    ) {
        self.configuration = configuration
        self.responder = responder
        self.metrics = metrics
        self.logger = logger
        self.accessLogger = accessLogger
        self.onListening = onListening
    }

    public func run() async throws {
        // NIO's shared event loops serve when their number fits, so that Swift Concurrency, when the
        // executable hands its global executor to them, runs handlers on the loop of their connection.
        let shared = MultiThreadedEventLoopGroup.singleton
        switch configuration.executionModel {
        case .single:
            try await serve(try await bindListeners(on: shared.next()))
        case _ where configuration.eventLoops == System.coreCount:
            try await serve(try await bindListeners(on: shared))
        default:
            let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, configuration.eventLoops))
            do {
                try await serve(try await bindListeners(on: group))
            } catch {
                try? await group.shutdownGracefully()
                throw error
            }
            try await group.shutdownGracefully()
        }
    }

    /// Binds one listener, or one per event loop with `SO_REUSEPORT`.
    private func bindListeners(on group: any EventLoopGroup) async throws -> [Listener] {
        let limiter = ConnectionLimiter(maxConnections: configuration.limits.maxConnections)
        guard configuration.executionModel == .reuseport else {
            let listener = try await bind(group: group, port: configuration.port, limiter: limiter)
            return [listener]
        }
        var listeners: [Listener] = []
        var port = configuration.port
        for loop in group.makeIterator() {
            let listener = try await bind(group: loop, port: port, limiter: limiter)
            port = listener.address.port ?? port
            listeners.append(listener)
        }
        return listeners
    }

    private func bind(group: any EventLoopGroup, port: Int, limiter: ConnectionLimiter) async throws -> Listener {
        let quiescer = ServerQuiescingHelper(group: group)
        let reusePort = configuration.executionModel == .reuseport
        var bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: Int32(configuration.backlog))
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(limiter.makeHandler())
                    try channel.pipeline.syncOperations.addHandler(quiescer.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelOption(.socketOption(.tcp_nodelay), value: configuration.tcpNoDelay ? 1 : 0)
            .childChannelOption(.allowRemoteHalfClosure, value: false)
        if reusePort {
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
        let pipeline = ConnectionPipeline(
            limits: configuration.limits,
            metrics: metrics,
            accessLogger: accessLogger
        )
        let channel = try await bootstrap.bind(
            host: configuration.host,
            port: port,
            serverBackPressureStrategy: nil
        ) { channel in
            channel.eventLoop.makeCompletedFuture {
                try pipeline.configure(channel)
            }
        }
        guard let address = channel.channel.localAddress else {
            throw ChannelError.unknownLocalAddress
        }
        return Listener(channel: channel, quiescer: quiescer, address: address)
    }

    private func serve(_ listeners: [Listener]) async throws {
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
        let connection = HTTPConnection(responder: responder, logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for listener in listeners {
                group.addTask { await listener.acceptConnections(serving: connection) }
            }
            group.addTask {
                try await gracefulShutdown()
                self.logger.info("Shutting down: listeners closed, draining connections")
                for listener in listeners {
                    listener.quiescer.initiateShutdown(promise: nil)
                }
                try await Task.sleep(for: .nanoseconds(self.configuration.drainTimeout.nanoseconds))
                throw DrainTimeoutExpired()
            }
            do {
                // Every listener ends once it is closed and its connections are done.
                for _ in listeners {
                    try await group.next()
                }
            } catch is DrainTimeoutExpired {
                logger.warning("Drain timeout expired: closing the remaining connections")
            }
            group.cancelAll()
        }
        // Every connection is closed or closing now; wait until the listeners have seen them all go,
        // so nothing is left pending when the event loops stop.
        for listener in listeners {
            await listener.drained()
        }
    }
}

/// The drain timeout passed with connections still open.
private struct DrainTimeoutExpired: Error {}

/// One bound listening socket.
private struct Listener: Sendable {
    let channel: NIOAsyncChannel<HTTPConnection.Channel, Never>
    let quiescer: ServerQuiescingHelper
    let address: SocketAddress

    /// Closes the listener if it is still open and returns once all its connections have closed.
    func drained() async {
        let promise = channel.channel.eventLoop.makePromise(of: Void.self)
        quiescer.initiateShutdown(promise: promise)
        try? await promise.futureResult.get()
    }

    /// Serves every accepted connection in its own task until the listener closes and they are done.
    func acceptConnections(serving connection: HTTPConnection) async {
        await withDiscardingTaskGroup { group in
            do {
                try await channel.executeThenClose { inbound in
                    for try await child in inbound {
                        group.addTask { await connection.run(child) }
                    }
                }
            } catch {
                // The listener was closed while accepting; its open connections still finish.
            }
        }
    }
}

extension SocketAddress {
    /// `127.0.0.1:8080` or `[::1]:8080`, as users write addresses.
    var hostAndPort: String {
        let host = ipAddress ?? "\(self)"
        let port = port.map(String.init) ?? "?"
        if case .v6 = self {
            return "[\(host)]:\(port)"
        }
        return "\(host):\(port)"
    }
}
