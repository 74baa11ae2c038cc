import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2
import NIOWebSocket

/// The first handler of an HTTP/2 stream: a WebSocket opened by extended CONNECT (RFC 8441: `:method
/// CONNECT`, `:protocol websocket`, the server having sent `SETTINGS_ENABLE_CONNECT_PROTOCOL`) to a path
/// with a WebSocket endpoint becomes a WebSocket on this stream, once the endpoint admits it (`:status
/// 200`, then WebSocket frames in DATA frames); a declined one (a missing or refused token) gets `:status
/// 403` and the stream ends. Every other stream gets the HTTP handlers (`serveHTTP`) and its first frame.
final class HTTP2StreamRouter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    private let webSockets: [WebSocketEndpoint]
    private let idleTimeout: TimeAmount
    private let metrics: EngineMetrics
    private let serveHTTP: (any Channel) throws -> Void
    /// Frames that came while a WebSocket was being admitted.
    private var held: [HTTP2Frame.FramePayload] = []
    private var admitting = false

    init(
        webSockets: [WebSocketEndpoint],
        idleTimeout: TimeAmount,
        metrics: EngineMetrics,
        serveHTTP: @escaping (any Channel) throws -> Void
    ) {
        self.idleTimeout = idleTimeout
        self.metrics = metrics
        self.webSockets = webSockets
        self.serveHTTP = serveHTTP
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !admitting else {
            held.append(unwrapInboundIn(data))
            return
        }
        guard case .headers(let headers) = unwrapInboundIn(data), let request = Self.extendedConnect(headers.headers),
            let endpoint = webSockets.first(where: { $0.matches(request) })
        else {
            do {
                try serveHTTP(context.channel)
            } catch {
                context.close(promise: nil)
                return
            }
            context.fireChannelRead(data)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        admitting = true
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let promise = context.eventLoop.makePromise(of: WebSocketEndpoint.Configure?.self)
        promise.completeWithTask { await endpoint.admit(request) }
        promise.futureResult.whenComplete { result in
            let (router, context) = loopBound.value
            router.admitted((try? result.get()) ?? nil, endpoint: endpoint, context: context)
        }
    }

    private func admitted(
        _ configure: WebSocketEndpoint.Configure?,
        endpoint: WebSocketEndpoint,
        context: ChannelHandlerContext
    ) {
        guard let configure else {
            respond(status: "403", endStream: true, context: context)
            return
        }
        respond(status: "200", endStream: false, context: context)
        do {
            let pipeline = context.pipeline.syncOperations
            try pipeline.addHandler(WebSocketStreamBridge(), position: .after(self))
            try pipeline.addHandler(WebSocketFrameEncoder())
            try pipeline.addHandler(ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: endpoint.maxFrameSize)))
            try pipeline.addHandler(WebSocketProtocolErrorHandler())
            try endpoint.start(on: context.channel, configure: configure, idleTimeout: idleTimeout, metrics: metrics)
        } catch {
            context.close(promise: nil)
            return
        }
        admitting = false
        for frame in held {
            context.fireChannelRead(wrapInboundOut(frame))
        }
        held.removeAll()
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    private func respond(status: String, endStream: Bool, context: ChannelHandlerContext) {
        let headers = HTTP2Frame.FramePayload.Headers(headers: [":status": status], endStream: endStream)
        context.writeAndFlush(wrapOutboundOut(.headers(headers)), promise: nil)
    }

    /// The request of an extended CONNECT for a WebSocket, as the endpoint's admission sees a GET upgrade.
    static func extendedConnect(_ headers: HPACKHeaders) -> HTTPRequestHead? {
        guard headers.first(name: ":method") == "CONNECT", headers.first(name: ":protocol") == "websocket",
            let path = headers.first(name: ":path")
        else { return nil }
        var fields = HTTPHeaders()
        for (name, value, _) in headers where !name.hasPrefix(":") {
            fields.add(name: name, value: value)
        }
        if let authority = headers.first(name: ":authority"), !fields.contains(name: "host") {
            fields.add(name: "Host", value: authority)
        }
        return HTTPRequestHead(version: .init(major: 2, minor: 0), method: .GET, uri: path, headers: fields)
    }
}

/// Carries a WebSocket's bytes in its stream's DATA frames: inbound DATA becomes bytes for the frame
/// decoder, the encoder's bytes become DATA; the client's END_STREAM closes the stream.
final class WebSocketStreamBridge: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = HTTP2Frame.FramePayload

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .data(let frame) = unwrapInboundIn(data) else { return }
        if case .byteBuffer(let bytes) = frame.data, bytes.readableBytes > 0 {
            context.fireChannelRead(wrapInboundOut(bytes))
        }
        if frame.endStream {
            context.close(promise: nil)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let frame = HTTP2Frame.FramePayload.Data(data: .byteBuffer(unwrapOutboundIn(data)))
        context.write(wrapOutboundOut(.data(frame)), promise: promise)
    }
}
