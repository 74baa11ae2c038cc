import NIOCore
import NIOWebSocket

/// What the server's JSON-over-WebSocket sessions (`/v1/ws`, signaling rooms) share: text frames go to
/// `receive(text:context:)`, binary frames to `receiveBinary(context:)`, pings are answered, and a close
/// frame or the server's shutdown (1001) closes the socket, once.
protocol JSONWebSocketSession: ChannelInboundHandler
where InboundIn == WebSocketFrame, OutboundOut == WebSocketFrame {
    /// Set once the close frame is on its way.
    var closing: Bool { get set }
    func receive(text: ByteBuffer, context: ChannelHandlerContext)
    func receiveBinary(context: ChannelHandlerContext)
}

extension JSONWebSocketSession {
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text:
            receive(text: frame.unmaskedData, context: context)
        case .binary:
            receiveBinary(context: context)
        case .ping:
            let pong = WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)
            context.writeAndFlush(wrapOutboundOut(pong), promise: nil)
        case .connectionClose:
            close(context: context, code: .normalClosure)
        default:
            break
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            close(context: context, code: .goingAway)  // The server is shutting down.
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    /// Sends a close frame with `code`, then closes the connection.
    func close(context: ChannelHandlerContext, code: WebSocketErrorCode) {
        guard !closing else { return }
        closing = true
        var data = context.channel.allocator.buffer(capacity: 2)
        data.write(webSocketErrorCode: code)
        let frame = WebSocketFrame(fin: true, opcode: .connectionClose, data: data)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(frame)).whenComplete { _ in channel.close(promise: nil) }
    }
}
