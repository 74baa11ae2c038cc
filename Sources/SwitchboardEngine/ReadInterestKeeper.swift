import NIOCore
import NIOHTTP1

/// Keeps the socket's read interest registered while a whole request waits for its response.
///
/// NIO's `HTTPServerPipelineHandler` holds back `read()` from the moment a request arrives until its
/// response has ended, so that a pipelining client cannot queue requests without bound. When the response
/// comes after the read that brought the request (every proxied request, every publish waiting for its
/// commit), NIO then drops the socket's read interest and registers it again: two `epoll_ctl` calls per
/// request. Placed between the decoder and the pipeline handler, this handler asks for the next read
/// itself while exactly one request is in flight and has arrived whole. A client that sends its next
/// request early (pipelining), a body still arriving, or an upgrade leave reading to the pipeline handler
/// as before.
final class ReadInterestKeeper: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// Requests whose head has arrived and whose response has not ended.
    private var inFlight = 0
    /// The newest request asks for a protocol upgrade.
    private var upgrading = false
    /// The newest request has arrived whole and asks for no protocol upgrade.
    private var waitingForResponse = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            inFlight += 1
            waitingForResponse = false
            upgrading = head.headers.contains(name: "upgrade")
        case .body:
            break
        case .end:
            waitingForResponse = !upgrading
        }
        context.fireChannelRead(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.fireChannelReadComplete()
        if inFlight == 1, waitingForResponse {
            context.read()
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            inFlight = max(0, inFlight - 1)
        }
        context.write(data, promise: promise)
    }
}
