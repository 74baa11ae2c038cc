import NIOCore
import NIOHTTP1
import SwitchboardHTTP1

/// The engine's HTTP/1.1 server codec: one handler between the socket's bytes and the request handlers.
///
/// Inbound it parses requests with `HTTP1RequestParser` and hands on their parts; a refused request is
/// answered with a JSON error and the connection closed. Requests are served one at a time: bytes of a
/// pipelined request wait until the response before it has ended, and reading stops while they wait, so a
/// client cannot queue work without bound. While one request waits for a response that comes later (a
/// commit, a proxied exchange) and nothing else is buffered, the socket stays readable — no read
/// interest is dropped and registered again per request. Outbound it encodes the response parts, writing
/// a head, a small body and the end as one buffer.
///
/// After a `101 Switching Protocols` it parses nothing more; once removed (by the upgrade handler), the
/// bytes it holds go on as they are.
final class HTTP1ServerCodec: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = IOData

    /// Bodies up to this size are copied next to their head rather than written as a buffer of their own.
    private static let coalescedBodyBytes = 4096

    private let refusals: Refusals
    private var parser: HTTP1RequestParser
    private var headEncoder = HTTP1ResponseHeadEncoder()
    /// Bytes read and not yet parsed.
    private var received: ByteBuffer?
    /// The request being answered: its head was handed on and its response has not ended.
    private var request: (method: HTTPMethod, version: HTTPVersion)?
    /// How the body of the response being written travels; `nil` before its head.
    private var framing: HTTP1BodyFraming?
    /// Encoded bytes not yet written, and the promise of the parts they hold.
    private var pending: ByteBuffer?
    private var pendingPromise: EventLoopPromise<Void>?
    /// Parts are being handed on; a response ending meanwhile lets the same loop go on.
    private var isDelivering = false
    /// A `read` held back while a pipelined request waits.
    private var heldRead = false
    /// No more requests are parsed: the connection switched protocols, refused a request, or closes.
    private var stopped = false
    /// A request was refused: the connection is closing and nothing more is written.
    private var refused = false
    /// The server is shutting down: the response in flight is the connection's last.
    private var quiescing = false
    /// A `101 Switching Protocols` went out: the bytes held belong to the next protocol.
    private var switched = false

    init(maxHeadBytes: Int, refusals: Refusals) {
        parser = HTTP1RequestParser(maxHeadBytes: maxHeadBytes)
        self.refusals = refusals
    }

    // MARK: - Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if received == nil || received!.readableBytes == 0 {
            received = bytes
        } else {
            received!.writeBuffer(&bytes)
        }
        deliver(context: context)
    }

    func read(context: ChannelHandlerContext) {
        if request != nil, parser.isAtRequestBoundary, received?.readableBytes ?? 0 > 0, !stopped {
            heldRead = true  // A pipelined request waits for the response before it.
        } else {
            context.read()
        }
    }

    /// At graceful shutdown an idle connection closes at once (a head still arriving gets no answer);
    /// a busy one after its response, which says `Connection: close`.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ChannelShouldQuiesceEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        stopped = true
        if request == nil {
            context.close(promise: nil)
        } else {
            quiescing = true
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        // Removed because the connection closes, the bytes held are dropped; on a switch they go on.
        if switched, let received, received.readableBytes > 0 {
            context.fireChannelRead(NIOAny(received))
            context.fireChannelReadComplete()
        }
        received = nil
    }

    /// Hands on the parts of the buffered requests, up to the first whose turn has not come.
    private func deliver(context: ChannelHandlerContext) {
        guard !isDelivering else { return }
        isDelivering = true
        defer { isDelivering = false }
        while !stopped, received != nil, !(request != nil && parser.isAtRequestBoundary) {
            let part: HTTP1RequestParser.Part?
            do {
                part = try parser.next(from: &received!)
            } catch {
                refuse(error as! HTTP1RequestParser.Failure, context: context)
                return
            }
            guard let part else { break }
            if case .head(let head) = part {
                request = (head.method, head.version)
                framing = nil
            }
            context.fireChannelRead(wrapInboundOut(part))
        }
        if received?.readableBytes == 0 {
            received = nil
        }
        if heldRead, request == nil || received == nil {
            heldRead = false
            context.read()
        }
    }

    /// Answers a request the parser refused, then closes the connection.
    private func refuse(_ failure: HTTP1RequestParser.Failure, context: ChannelHandlerContext) {
        stopped = true
        received = nil
        let error = HTTPError(failure)
        refusals.record(error, peer: context.channel.remoteAddress)
        // Not HTTP, or a response has begun (which an error cannot replace): closed without an answer.
        guard failure != .notHTTP, framing == nil, context.channel.isActive else {
            context.close(promise: nil)
            return
        }
        let (head, body) = Refusals.response(to: error)
        var bytes = context.channel.allocator.buffer(capacity: 256 + body.readableBytes)
        _ = headEncoder.encode(
            head,
            requestMethod: request?.method ?? .GET,
            requestVersion: .http1_1,
            into: &bytes
        )
        bytes.writeImmutableBuffer(body)
        refused = true
        writePending(context: context)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.byteBuffer(bytes))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }

    // MARK: - Outbound

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard !refused else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        switch unwrapOutboundIn(data) {
        case .head(let head):
            writeHead(head, promise: promise, context: context)
        case .body(let body):
            writeBody(body, promise: promise, context: context)
        case .end(let trailers):
            writeEnd(trailers, promise: promise, context: context)
        }
    }

    func flush(context: ChannelHandlerContext) {
        writePending(context: context)
        context.flush()
    }

    private func writeHead(_ head: HTTPResponseHead, promise: EventLoopPromise<Void>?, context: ChannelHandlerContext) {
        var head = head
        if quiescing, head.status.code >= 200 {
            head.headers.replaceOrAdd(name: "connection", value: "close")
        }
        let (method, version) = request ?? (.GET, .http1_1)
        var bytes = takePending(context: context, capacity: 256)
        let framing = headEncoder.encode(head, requestMethod: method, requestVersion: version, into: &bytes)
        append(bytes, promise: promise)
        if head.status == .switchingProtocols {
            stopped = true
            switched = true
        } else if head.status.code >= 200 {
            self.framing = framing
            if head.headers.contains(name: "connection"), !head.isKeepAlive {
                stopped = true
            }
        }
    }

    private func writeBody(_ body: IOData, promise: EventLoopPromise<Void>?, context: ChannelHandlerContext) {
        switch (framing ?? .identity, body) {
        case (.none, _):
            promise?.succeed()
        case (.chunked, _) where body.readableBytes == 0:
            promise?.succeed()
        case (.chunked, .byteBuffer(let buffer)) where buffer.readableBytes <= Self.coalescedBodyBytes:
            var bytes = takePending(context: context, capacity: buffer.readableBytes + 16)
            bytes.writeChunkSize(buffer.readableBytes)
            bytes.writeImmutableBuffer(buffer)
            bytes.writeStaticString("\r\n")
            append(bytes, promise: promise)
        case (.chunked, _):
            var bytes = takePending(context: context, capacity: 16)
            bytes.writeChunkSize(body.readableBytes)
            append(bytes, promise: nil)
            writePending(context: context)
            context.write(wrapOutboundOut(body), promise: promise)
            pending = context.channel.allocator.buffer(staticString: "\r\n")
        case (_, .byteBuffer(let buffer)) where buffer.readableBytes <= Self.coalescedBodyBytes:
            var bytes = takePending(context: context, capacity: buffer.readableBytes)
            bytes.writeImmutableBuffer(buffer)
            append(bytes, promise: promise)
        default:
            writePending(context: context)
            context.write(wrapOutboundOut(body), promise: promise)
        }
    }

    private func writeEnd(_ trailers: HTTPHeaders?, promise: EventLoopPromise<Void>?, context: ChannelHandlerContext) {
        let framing = self.framing
        if framing == .chunked {
            var bytes = takePending(context: context, capacity: 8)
            bytes.writeStaticString("0\r\n")
            for (name, value) in trailers ?? [:] {
                bytes.writeString("\(name): \(value)\r\n")
            }
            bytes.writeStaticString("\r\n")
            append(bytes, promise: nil)
        }
        // Even an end without bytes is written, so that its promise completes when it is flushed.
        if pending == nil {
            pending = context.channel.allocator.buffer(capacity: 0)
        }
        if framing == .untilClose || quiescing {
            // The body's end is the connection's.
            stopped = true
            let written = promise ?? context.eventLoop.makePromise()
            let channel = context.channel
            written.futureResult.whenComplete { _ in channel.close(promise: nil) }
            append(pending!, promise: written)
        } else {
            append(pending!, promise: promise)
        }
        writePending(context: context)
        request = nil
        self.framing = nil
        deliver(context: context)
    }

    /// The encoded bytes not yet written, to write more after; or a new buffer.
    private func takePending(context: ChannelHandlerContext, capacity: Int) -> ByteBuffer {
        defer { pending = nil }
        return pending ?? context.channel.allocator.buffer(capacity: capacity)
    }

    /// Makes `bytes` the bytes to write next, with `promise` among those completed when they are written.
    private func append(_ bytes: ByteBuffer, promise: EventLoopPromise<Void>?) {
        pending = bytes
        if let promise {
            if let pendingPromise {
                pendingPromise.futureResult.cascade(to: promise)
            } else {
                pendingPromise = promise
            }
        }
    }

    private func writePending(context: ChannelHandlerContext) {
        guard let bytes = pending else { return }
        let promise = pendingPromise
        pending = nil
        pendingPromise = nil
        context.write(wrapOutboundOut(.byteBuffer(bytes)), promise: promise)
    }
}

extension ByteBuffer {
    /// `SIZE CRLF` of a chunk, in hexadecimal.
    fileprivate mutating func writeChunkSize(_ size: Int) {
        writeString(String(size, radix: 16))
        writeStaticString("\r\n")
    }
}

extension HTTPError {
    /// The client-facing error for a request the parser refused.
    init(_ failure: HTTP1RequestParser.Failure) {
        switch failure {
        case .headTooLarge:
            self.init(
                .requestHeaderFieldsTooLarge,
                code: "header_too_large",
                message: "The request head exceeds the header size or field count limit"
            )
        case .invalidRequestLine:
            self.init(.badRequest, code: "invalid_request_line", message: "The request line is not valid HTTP/1.1")
        case .notHTTP:
            self.init(.badRequest, code: "not_http", message: "The bytes received are not an HTTP request")
        case .unsupportedVersion:
            self.init(.httpVersionNotSupported, code: "version_not_supported", message: "Only HTTP/1.x is served here")
        case .invalidHeader:
            self.init(
                .badRequest,
                code: "invalid_header",
                message: "A header field is malformed: invalid characters, whitespace before the colon, or obs-fold"
            )
        case .invalidHost:
            self.init(.badRequest, code: "invalid_host", message: "HTTP/1.1 requests need exactly one valid Host")
        case .invalidContentLength:
            self.init(.badRequest, code: "invalid_content_length", message: "Content-Length is not a valid length")
        case .ambiguousFraming:
            self.init(
                .badRequest,
                code: "ambiguous_framing",
                message:
                    "Content-Length is repeated or comes with Transfer-Encoding, or HTTP/1.0 uses Transfer-Encoding"
            )
        case .invalidTransferEncoding:
            self.init(
                .badRequest,
                code: "invalid_transfer_encoding",
                message: "Transfer-Encoding must end in chunked, once"
            )
        case .unsupportedTransferCoding:
            self.init(
                .notImplemented,
                code: "unsupported_transfer_coding",
                message: "Only the chunked transfer coding is accepted"
            )
        case .invalidChunk:
            self.init(.badRequest, code: "invalid_chunk", message: "The chunked body is malformed")
        }
    }
}
