import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import SwitchboardEngine
import Synchronization

/// The listening side of the `tcp` and `forward` listeners: binds one socket, or one per event loop
/// with `SO_REUSEPORT`, hands each accepted connection to `initialize`, and on shutdown stops accepting
/// and gives open connections `drainTimeout` to end before closing them.
struct RawListener: Sendable {
    let name: String
    let host: String
    let port: Int
    let executionModel: ExecutionModel
    let group: any EventLoopGroup
    let drainTimeout: TimeAmount
    let logger: Logger
    let initialize: @Sendable (any Channel) -> EventLoopFuture<Void>

    /// Serves until graceful shutdown (or cancellation), calling `onListening` with the bound address.
    func run(onListening: @Sendable (SocketAddress) async -> Void) async throws {
        let open = OpenChannels()
        var channels: [any Channel] = []
        var boundPort = port
        let loops: [any EventLoopGroup] =
            switch executionModel {
            case .single: [group.next()]
            case .sharedListener: [group]
            case .reuseport: Array(group.makeIterator())
            }
        for loop in loops {
            var bootstrap = ServerBootstrap(group: loop)
                .serverChannelOption(.backlog, value: 1024)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelOption(.allowRemoteHalfClosure, value: true)
                .childChannelInitializer { channel in
                    open.add(channel)
                    return initialize(channel)
                }
            if executionModel == .reuseport {
                bootstrap = bootstrap.serverChannelOption(
                    ChannelOptions.socket(SocketOptionLevel(SOL_SOCKET), SO_REUSEPORT),
                    value: 1
                )
            }
            let channel = try await bootstrap.bind(host: host, port: boundPort).get()
            boundPort = channel.localAddress?.port ?? boundPort
            channels.append(channel)
        }
        if let address = channels.first?.localAddress {
            await onListening(address)
        }
        try? await gracefulShutdown()
        for channel in channels {
            try? await channel.close()
        }
        let deadline = NIODeadline.now() + drainTimeout
        while open.count > 0, NIODeadline.now() < deadline {
            try? await Task.sleep(nanoseconds: 50_000_000)
        }
        open.closeAll()
    }
}

/// The connections a listener has open.
final class OpenChannels: Sendable {
    private let channels = Mutex([ObjectIdentifier: any Channel]())

    var count: Int { channels.withLock { $0.count } }

    func add(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        channels.withLock { $0[id] = channel }
        channel.closeFuture.whenComplete { _ in
            _ = self.channels.withLock { $0.removeValue(forKey: id) }
        }
    }

    func closeAll() {
        for channel in channels.withLock({ Array($0.values) }) {
            channel.close(promise: nil)
        }
    }
}
