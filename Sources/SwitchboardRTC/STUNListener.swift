import CoreMetrics
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import SwitchboardEngine
import SwitchboardSTUN

/// STUN and TURN on UDP and TCP at one address (`serve --stun-listen`, default `127.0.0.1:3478`): a
/// client learns the address its packets come from, as ICE needs for server-reflexive candidates, and
/// with credentials configured allocates relay addresses for relayed candidates.
public struct STUNListener: Service {
    public struct Configuration: Sendable {
        public var host: String
        /// 0 picks a free UDP port, and TCP takes the same one.
        public var port: Int
        /// Time a TCP connection may stay silent before it is closed.
        public var idleTimeout: TimeAmount = .seconds(30)
        /// TURN's settings; without credentials TURN is off and only STUN answers.
        public var turn = TURNConfiguration()
        /// STUN and TURN over TLS (`turns:`, RFC 8656 §3.1) at its host and port; `nil` is off.
        public var tls: TLSListener?

        public init(host: String = "127.0.0.1", port: Int = 3478) {
            self.host = host
            self.port = port
        }
    }

    /// Called once the sockets are bound, with their port and the TLS listener's (when there is one).
    public typealias ListeningCallback = @Sendable (_ port: Int, _ tlsPort: Int?) -> Void

    private let configuration: Configuration
    private let server: STUNServer
    private let logger: Logger
    private let onListening: ListeningCallback

    public init(
        configuration: Configuration,
        metrics: any MetricsFactory,
        logger: Logger,
        onListening: @escaping ListeningCallback = { _, _ in }
    ) {
        self.configuration = configuration
        let turn =
            configuration.turn.credentials.isEnabled
            ? TURNServer(
                configuration: configuration.turn,
                listenerHost: configuration.host,
                metrics: TURNMetrics(factory: metrics)
            )
            : nil
        self.server = STUNServer(metrics: STUNMetrics(factory: metrics), turn: turn)
        self.logger = logger
        self.onListening = onListening
    }

    public func run() async throws {
        let (udp, tcp) = try await bind()
        let port = tcp.localAddress?.port ?? configuration.port
        var tls: (any Channel)?
        if let listener = configuration.tls {
            let context = try listener.makeContext(applicationProtocols: ["stun.turn"])
            tls = try await bindTCP(host: listener.host, port: listener.port, tls: context)
        }
        logger.info(
            "STUN listening",
            metadata: [
                "stun_address": "\(configuration.host):\(port)", "transports": "udp,tcp", "udp_sockets": "\(udp.count)",
                "turn": "\(server.turn == nil ? "off" : "on")",
            ]
        )
        if let tls, let tlsPort = tls.localAddress?.port, let host = configuration.tls?.host {
            logger.info("STUN listening with TLS", metadata: ["stun_tls_address": "\(host):\(tlsPort)"])
        }
        onListening(port, tls?.localAddress?.port)
        if let turn = server.turn {
            // Lifetimes end to the second.
            while !Task.isShuttingDownGracefully {
                turn.sweep()
                try? await Task.sleep(for: .seconds(1))
            }
        }
        try? await gracefulShutdown()
        for socket in udp { try? await socket.close() }
        try? await tcp.close()
        try? await tls?.close()
    }

    /// The UDP sockets and the TCP socket on one port. With port 0 the first UDP socket picks it, and when
    /// TCP finds that port taken (by another program's TCP socket) all try again with another.
    private func bind() async throws -> (udp: [any Channel], tcp: any Channel) {
        var attempts = configuration.port == 0 ? 20 : 1
        while true {
            let udp = try await bindUDP()
            do {
                let port = udp[0].localAddress?.port ?? configuration.port
                return (udp, try await bindTCP(host: configuration.host, port: port, tls: nil))
            } catch let error as IOError where error.errnoCode == EADDRINUSE && attempts > 1 {
                attempts -= 1
                for socket in udp { try? await socket.close() }
            } catch {
                for socket in udp { try? await socket.close() }
                throw error
            }
        }
    }

    /// One UDP socket per event loop on the same port (`SO_REUSEPORT`): the kernel spreads clients over
    /// them by address, and a client's allocation relays on its socket's loop, so datagrams are read,
    /// relayed and written by every core without crossing threads.
    private func bindUDP() async throws -> [any Channel] {
        let server = self.server
        var sockets: [any Channel] = []
        var port = configuration.port
        do {
            for loop in MultiThreadedEventLoopGroup.singleton.makeIterator() {
                let socket = try await DatagramBootstrap(group: loop)
                    .channelOption(.socketOption(.so_reuseaddr), value: 1)
                    .channelOption(ChannelOptions.socket(SocketOptionLevel(SOL_SOCKET), SO_REUSEPORT), value: 1)
                    .channelOption(.datagramVectorReadMessageCount, value: DatagramReads.count)
                    .channelOption(.recvAllocator, value: DatagramReads.allocator)
                    // Room for bursts from every client of the socket while its loop is busy, as coturn's.
                    .channelOption(.socketOption(.so_rcvbuf), value: 2 << 20)
                    .channelOption(.socketOption(.so_sndbuf), value: 2 << 20)
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(
                                STUNDatagramHandler(server: server, writer: CoalescingWriter(channel: channel))
                            )
                        }
                    }
                    .bind(host: configuration.host, port: port)
                    .get()
                sockets.append(socket)
                port = socket.localAddress?.port ?? port
            }
        } catch {
            for socket in sockets { try? await socket.close() }
            throw error
        }
        return sockets
    }

    /// A TCP listener whose connections carry STUN and ChannelData, inside TLS when `tls` is given.
    private func bindTCP(host: String, port: Int, tls: NIOSSLContext?) async throws -> any Channel {
        let server = self.server
        let idleTimeout = configuration.idleTimeout
        return try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    if let tls {
                        try pipeline.addHandler(NIOSSLServerHandler(context: tls))
                    }
                    try pipeline.addHandlers(
                        IdleStateHandler(readTimeout: idleTimeout),
                        ByteToMessageHandler(STUNStreamDecoder()),
                        STUNStreamHandler(server: server, writer: CoalescingWriter(channel: channel))
                    )
                }
            }
            .bind(host: host, port: port)
            .get()
    }
}

/// Each datagram is a message of the client at its address.
final class STUNDatagramHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    private let server: STUNServer
    private let writer: CoalescingWriter

    init(server: STUNServer, writer: CoalescingWriter) {
        self.server = server
        self.writer = writer
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        guard DatagramReads.isWhole(envelope.data) else { return server.metrics.dropped.increment() }
        server.receive(envelope.data, from: .datagram(writer, remote: envelope.remoteAddress))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A datagram socket outlives its peers' errors (such as ICMP port unreachable): keep reading.
    }
}

/// Cuts a TCP byte stream into STUN messages by the length in each header (RFC 8489 §6.2.2), and
/// ChannelData messages by theirs, padded to 4 bytes (RFC 8656 §12.5). Bytes that can start neither
/// close the connection.
struct STUNStreamDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    struct NotSTUN: Error {}

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self),
            let length = buffer.getInteger(at: buffer.readerIndex + 2, as: UInt16.self)
        else { return .needMoreData }
        let total: Int
        if STUNMessage.isSTUN(firstByte: first) {
            total = STUNMessage.headerLength + Int(length)
        } else if ChannelData.isChannelData(firstByte: first) {
            total = ChannelData.wireLength(dataLength: Int(length), padded: true)
        } else {
            throw NotSTUN()
        }
        guard let message = buffer.readSlice(length: total) else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(message))
        return .continue
    }
}

/// Hands each message of a TCP connection to the server; ends the connection's allocation when it
/// closes, and closes it when it goes silent or sends what is neither STUN nor ChannelData.
final class STUNStreamHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer

    private let server: STUNServer
    private let writer: CoalescingWriter

    init(server: STUNServer, writer: CoalescingWriter) {
        self.server = server
        self.writer = writer
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let remote = context.remoteAddress else { return }
        server.receive(unwrapInboundIn(data), from: .stream(writer, remote: remote))
    }

    func channelInactive(context: ChannelHandlerContext) {
        server.turn?.remove(.stream(ObjectIdentifier(context.channel)))
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            // A connection that holds an allocation lives as long as the allocation.
            if server.turn?.hasAllocation(.stream(ObjectIdentifier(context.channel))) != true {
                context.close(promise: nil)
            }
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// How UDP sockets here read: up to 16 datagrams a system call (`recvmmsg`), each in a 4 KiB slot —
/// more than a path MTU. A datagram that fills its slot may have been cut short, and is dropped rather
/// than passed on truncated.
enum DatagramReads {
    static let count = 16
    static let slot = 4096
    static let allocator = FixedSizeRecvByteBufferAllocator(capacity: count * slot)

    /// Whether `datagram` arrived whole: shorter than its slot.
    static func isWhole(_ datagram: ByteBuffer) -> Bool {
        datagram.readableBytes < slot
    }
}
