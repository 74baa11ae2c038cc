import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOWebSocket

/// A path where `GET` requests with `Upgrade: websocket` become WebSocket connections (RFC 6455). A
/// segment written `{name}` matches any one segment, as in `/v1/rtc/rooms/{room}`.
///
/// The engine does the handshake (`NIOWebSocketServerUpgrader`) and reassembles fragmented messages.
/// Before upgrading it asks `admit`, which may await (to check a token, say) and answers with what adds
/// the application's frame handlers to the upgraded channel — or `nil`, declining: the request is then
/// routed as plain HTTP, where the router answers (401, 426, …). An upgrade is honoured on any request
/// of a keep-alive connection. A socket silent for the idle timeout (`--idle-timeout`) is pinged, and
/// closed (1001) when the next idle timeout passes without a frame, so a vanished peer does not hold on. Over HTTP/2 the same endpoint takes
/// extended CONNECT streams (RFC 8441), one WebSocket per stream.
public struct WebSocketEndpoint: Sendable {
    /// Adds the application's frame handlers to an upgraded channel, on its event loop.
    public typealias Configure = @Sendable (any Channel) throws -> Void

    public var path: String
    /// Largest message, after reassembly of fragments.
    public var maxMessageBytes: Int
    public var admit: @Sendable (HTTPRequestHead) async -> Configure?

    public init(
        path: String,
        maxMessageBytes: Int = 1 << 20,
        admit: @escaping @Sendable (HTTPRequestHead) async -> Configure?
    ) {
        self.path = path
        self.maxMessageBytes = maxMessageBytes
        self.admit = admit
    }

    /// Whether `head` is for this endpoint's path.
    func matches(_ head: HTTPRequestHead) -> Bool {
        let requested = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0]
        guard path.contains("{") else { return requested == path }
        let pattern = path.split(separator: "/", omittingEmptySubsequences: false)
        let segments = requested.split(separator: "/", omittingEmptySubsequences: false)
        return pattern.count == segments.count
            && zip(pattern, segments).allSatisfy { expected, segment in
                expected.hasPrefix("{") ? !segment.isEmpty : expected == segment
            }
    }

    /// The largest WebSocket frame accepted.
    var maxFrameSize: Int { min(maxMessageBytes, Int(UInt32.max)) }

    /// Makes `channel`, just upgraded, a WebSocket session: the engine's handlers — reassembly of
    /// fragmented messages up to `maxMessageBytes`, the keepalive — then the application's, counted as open
    /// until the channel closes.
    func start(on channel: any Channel, configure: Configure, idleTimeout: TimeAmount, metrics: EngineMetrics) throws {
        try channel.pipeline.syncOperations.addHandlers([
            NIOWebSocketFrameAggregator(
                minNonFinalFragmentSize: 0,
                maxAccumulatedFrameCount: 1024,
                maxAccumulatedFrameSize: maxMessageBytes
            ),
            WebSocketKeepalive(idleTimeout: idleTimeout),
        ])
        try configure(channel)
        metrics.open(.websocket, until: channel)
    }

    /// The upgrader of one connection for all `endpoints`, each request going to the endpoint of its
    /// path; what that endpoint's `admit` answered waits here until the upgrade happens.
    static func makeUpgrader(
        for endpoints: [WebSocketEndpoint],
        idleTimeout: TimeAmount,
        metrics: EngineMetrics
    ) -> NIOWebSocketServerUpgrader {
        let admitted = NIOLockedValueBox<(WebSocketEndpoint, Configure)?>(nil)
        return NIOWebSocketServerUpgrader(
            maxFrameSize: endpoints.map(\.maxFrameSize).max() ?? 1 << 20,
            automaticErrorHandling: true,
            shouldUpgrade: { channel, head in
                guard let endpoint = endpoints.first(where: { $0.matches(head) }) else {
                    return channel.eventLoop.makeSucceededFuture(nil)
                }
                let promise = channel.eventLoop.makePromise(of: HTTPHeaders?.self)
                promise.completeWithTask {
                    let configure = await endpoint.admit(head)
                    admitted.withLockedValue { $0 = configure.map { (endpoint, $0) } }
                    return configure == nil ? nil : HTTPHeaders()
                }
                return promise.futureResult
            },
            upgradePipelineHandler: { channel, _ in
                channel.eventLoop.makeCompletedFuture {
                    guard let (endpoint, configure) = admitted.withLockedValue({ $0 }) else { return }
                    try endpoint.start(on: channel, configure: configure, idleTimeout: idleTimeout, metrics: metrics)
                }
            }
        )
    }
}

/// Pings a WebSocket that has been silent for the idle timeout; closes it (1001) when it stays silent
/// for another — any frame, a pong among them, shows the peer is there. Inbound only, with its own
/// timer, so the frames a server writes (fan-out) never pass through it.
final class WebSocketKeepalive: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let idleTimeout: TimeAmount
    /// Whether a frame arrived since the last check.
    private var heard = false
    private var pinged = false
    private var check: RepeatedTask?

    init(idleTimeout: TimeAmount) {
        self.idleTimeout = idleTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        check = context.eventLoop.scheduleRepeatedTask(initialDelay: idleTimeout, delay: idleTimeout) { _ in
            let (keepalive, context) = loopBound.value
            keepalive.checkIn(context: context)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        check?.cancel()
    }

    func channelInactive(context: ChannelHandlerContext) {
        check?.cancel()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        heard = true
        context.fireChannelRead(data)
    }

    private func checkIn(context: ChannelHandlerContext) {
        if heard {
            heard = false
            pinged = false
        } else if pinged {
            check?.cancel()
            var code = context.channel.allocator.buffer(capacity: 2)
            code.write(webSocketErrorCode: .goingAway)
            let close = WebSocketFrame(fin: true, opcode: .connectionClose, data: code)
            context.writeAndFlush(wrapOutboundOut(close), promise: nil)
            context.close(promise: nil)
        } else {
            pinged = true
            let ping = WebSocketFrame(fin: true, opcode: .ping, data: ByteBuffer())
            context.writeAndFlush(wrapOutboundOut(ping), promise: nil)
        }
    }
}
