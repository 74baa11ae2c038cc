import CoreMetrics
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import SwitchboardSTUN

/// STUN on UDP and TCP at one address (`serve --stun-listen`, default `127.0.0.1:3478`): a client learns
/// the address its packets come from, as ICE needs for server-reflexive candidates.
public struct STUNListener: Service {
    public struct Configuration: Sendable {
        public var host: String
        /// 0 picks a free UDP port, and TCP takes the same one.
        public var port: Int
        /// Time a TCP connection may stay silent before it is closed.
        public var idleTimeout: TimeAmount = .seconds(30)

        public init(host: String = "127.0.0.1", port: Int = 3478) {
            self.host = host
            self.port = port
        }
    }

    /// Called once both sockets are bound, with their port.
    public typealias ListeningCallback = @Sendable (Int) -> Void

    private let configuration: Configuration
    private let responder: STUNResponder
    private let logger: Logger
    private let onListening: ListeningCallback

    public init(
        configuration: Configuration,
        metrics: any MetricsFactory,
        logger: Logger,
        onListening: @escaping ListeningCallback = { _ in }
    ) {
        self.configuration = configuration
        self.responder = STUNResponder(metrics: STUNMetrics(factory: metrics))
        self.logger = logger
        self.onListening = onListening
    }

    public func run() async throws {
        let (udp, tcp) = try await bind()
        let port = udp.localAddress?.port ?? configuration.port
        logger.info(
            "STUN listening",
            metadata: ["stun_address": "\(configuration.host):\(port)", "transports": "udp,tcp"]
        )
        onListening(port)
        try? await gracefulShutdown()
        try? await udp.close()
        try? await tcp.close()
    }

    /// The UDP and TCP sockets on one port. With port 0 the UDP socket picks it, and when TCP finds that
    /// port taken (by another program's TCP socket) both try again with another.
    private func bind() async throws -> (udp: any Channel, tcp: any Channel) {
        var attempts = configuration.port == 0 ? 20 : 1
        while true {
            let udp = try await bindUDP()
            do {
                return (udp, try await bindTCP(port: udp.localAddress?.port ?? configuration.port))
            } catch let error as IOError where error.errnoCode == EADDRINUSE && attempts > 1 {
                attempts -= 1
                try? await udp.close()
            } catch {
                try? await udp.close()
                throw error
            }
        }
    }

    private func bindUDP() async throws -> any Channel {
        let responder = self.responder
        return try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(STUNDatagramHandler(responder: responder))
                }
            }
            .bind(host: configuration.host, port: configuration.port)
            .get()
    }

    private func bindTCP(port: Int) async throws -> any Channel {
        let responder = self.responder
        let idleTimeout = configuration.idleTimeout
        return try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(
                        IdleStateHandler(readTimeout: idleTimeout),
                        ByteToMessageHandler(STUNStreamDecoder()),
                        STUNStreamHandler(responder: responder)
                    )
                }
            }
            .bind(host: configuration.host, port: port)
            .get()
    }
}

/// One datagram, one answer.
final class STUNDatagramHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    private let responder: STUNResponder

    init(responder: STUNResponder) {
        self.responder = responder
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        guard let reply = responder.answer(Array(envelope.data.readableBytesView), from: envelope.remoteAddress)
        else { return }
        let buffer = context.channel.allocator.buffer(bytes: reply)
        context.writeAndFlush(
            wrapOutboundOut(AddressedEnvelope(remoteAddress: envelope.remoteAddress, data: buffer)),
            promise: nil
        )
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A datagram socket outlives its peers' errors (such as ICMP port unreachable): keep reading.
    }
}

/// Cuts a TCP byte stream into STUN messages by the length in each header (RFC 8489 §6.2.2). Bytes that
/// cannot start a STUN message close the connection.
struct STUNStreamDecoder: ByteToMessageDecoder {
    typealias InboundOut = [UInt8]

    struct NotSTUN: Error {}

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let type = buffer.getInteger(at: buffer.readerIndex, as: UInt16.self) else { return .needMoreData }
        guard type & 0xC000 == 0 else { throw NotSTUN() }
        guard let length = buffer.getInteger(at: buffer.readerIndex + 2, as: UInt16.self) else { return .needMoreData }
        let total = STUNMessage.headerLength + Int(length)
        guard let message = buffer.readBytes(length: total) else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(message))
        return .continue
    }
}

/// Answers each message of a TCP connection on it; closes the connection when it goes silent or sends
/// what is not STUN.
final class STUNStreamHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = [UInt8]
    typealias OutboundOut = ByteBuffer

    private let responder: STUNResponder

    init(responder: STUNResponder) {
        self.responder = responder
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let remote = context.remoteAddress,
            let reply = responder.answer(unwrapInboundIn(data), from: remote)
        else { return }
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: reply)), promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
