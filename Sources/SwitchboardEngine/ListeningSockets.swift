import NIOCore
import NIOExtras
import NIOPosix

/// The listening sockets of one execution model — one socket served by one event loop (`single`), one
/// socket whose connections are spread over the loops (`shared-listener`), or one socket per loop on the
/// same port with `SO_REUSEPORT` — with their options, the cap on open connections, and the drain at
/// shutdown. The engine's HTTP listeners and the edge's `tcp` and `forward` listeners all bind through it.
public struct ListeningSockets: Sendable {
    public struct Options: Sendable {
        /// Length of the kernel's accept queue.
        public var backlog: Int32 = 1024
        public var tcpNoDelay = true
        /// TCP Fast Open queue length; `nil` leaves it off.
        public var tcpFastOpenQueue: Int?
        /// Whether a connection's read side may end while its write side stays open (tunnels need it).
        public var allowRemoteHalfClosure = false

        public init() {}
    }

    public let executionModel: ExecutionModel
    public let options: Options
    private let group: any EventLoopGroup
    private let connections: ConnectionRegistry

    /// - Parameter connections: the open connections, shared by every listener of a server so that
    ///   `maxConnections` caps them all together.
    public init(
        executionModel: ExecutionModel,
        group: any EventLoopGroup,
        options: Options = Options(),
        connections: ConnectionRegistry = ConnectionRegistry(maxConnections: .max)
    ) {
        self.executionModel = executionModel
        self.group = group
        self.options = options
        self.connections = connections
    }

    /// How these sockets appear in a `ListenerDirectory`: serving `serves`, with their execution model and
    /// the event loops their connections are spread over.
    public func listing(serves: String) -> ListenerDirectory.Listener {
        let eventLoops = executionModel == .single ? 1 : Array(group.makeIterator()).count
        return .init(serves: serves, executionModel: executionModel, eventLoops: eventLoops)
    }

    /// Binds `host:port` (port 0 picks a free port, which every `reuseport` socket then shares) and hands
    /// each accepted connection to `initialize`, on the connection's event loop, to build its pipeline.
    public func bind(
        host: String,
        port: Int,
        initialize: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>
    ) async throws -> BoundSockets {
        let loops: [any EventLoopGroup] =
            switch executionModel {
            case .single: [group.next()]
            case .sharedListener: [group]
            case .reuseport: Array(group.makeIterator())
            }
        var listeners: [(channel: any Channel, quiescer: ServerQuiescingHelper)] = []
        var port = port
        do {
            for loop in loops {
                let quiescer = ServerQuiescingHelper(group: loop)
                let channel = try await bootstrap(on: loop, quiescer: quiescer, initialize: initialize)
                    .bind(host: host, port: port).get()
                port = channel.localAddress?.port ?? port
                listeners.append((channel, quiescer))
            }
        } catch {
            for listener in listeners {
                try? await listener.channel.close()
            }
            throw error
        }
        guard let address = listeners.first?.channel.localAddress else { throw ChannelError.unknownLocalAddress }
        return BoundSockets(address: address, listeners: listeners, connections: connections)
    }

    private func bootstrap(
        on loop: any EventLoopGroup,
        quiescer: ServerQuiescingHelper,
        initialize: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>
    ) -> ServerBootstrap {
        let connections = connections
        var bootstrap = ServerBootstrap(group: loop)
            .serverChannelOption(.backlog, value: options.backlog)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(connections.makeHandler())
                    try channel.pipeline.syncOperations.addHandler(quiescer.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelInitializer(initialize)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: options.tcpNoDelay ? 1 : 0)
            .childChannelOption(.allowRemoteHalfClosure, value: options.allowRemoteHalfClosure)
        if executionModel == .reuseport {
            bootstrap = bootstrap.serverChannelOption(
                ChannelOptions.socket(SocketOptionLevel(SOL_SOCKET), SO_REUSEPORT),
                value: 1
            )
        }
        if let queue = options.tcpFastOpenQueue {
            bootstrap = bootstrap.serverChannelOption(
                ChannelOptions.socket(SocketOptionLevel(IPPROTO_TCP), TCP_FASTOPEN),
                value: SocketOptionValue(queue)
            )
        }
        return bootstrap
    }
}

/// Sockets bound by `ListeningSockets`, listening until drained.
public struct BoundSockets: Sendable {
    /// The address they listen on (the real port when 0 was asked for).
    public let address: SocketAddress
    fileprivate let listeners: [(channel: any Channel, quiescer: ServerQuiescingHelper)]
    fileprivate let connections: ConnectionRegistry

    /// How many sockets listen: one, or one per event loop with `reuseport`.
    public var count: Int { listeners.count }

    /// Stops accepting at once and asks open connections to finish what they are doing (a
    /// `ChannelShouldQuiesceEvent`); whatever is still open when `timeout` passes is closed, after
    /// `onTimeout` is told how many.
    public func drain(timeout: TimeAmount, onTimeout: @escaping @Sendable (Int) -> Void = { _ in }) async {
        guard let loop = listeners.first?.channel.eventLoop else { return }
        let drained = listeners.map { listener in
            let promise = listener.channel.eventLoop.makePromise(of: Void.self)
            listener.quiescer.initiateShutdown(promise: promise)
            return promise.futureResult
        }
        let connections = connections
        let deadline = loop.scheduleTask(in: timeout) {
            let open = connections.openConnections
            if open > 0 {
                onTimeout(open)
                connections.closeAll()
            }
        }
        try? await EventLoopFuture.andAllComplete(drained, on: loop).get()
        deadline.cancel()
    }
}
