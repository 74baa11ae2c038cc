import Logging
import NIOCore
import NIOHTTP1

/// Serves the requests of one HTTP/1.1 connection, one at a time (the pipelining handler before it
/// holds back the next): routes each head, reads the body within the route's limit, runs the handler
/// — inline on the event loop for immediate routes, in a task for async ones — and writes the response.
/// A streaming route's handler starts at the head and gets the body as it arrives; reads from the socket
/// pause while it falls behind.
final class HTTPRequestHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        /// Waiting for the next head.
        case idle
        /// Collecting the body of a routed request (into `collectedBody`).
        case readingBody(RoutedRequest)
        /// Passing the body of a streaming route to its running handler.
        case streamingBody(RoutedRequest, source: RequestBodyStream.Producer.Source, received: Int)
        /// The request was answered before its body ended; its remaining parts are dropped.
        case skippingBody
        /// The request is refused (no route, say); the answer waits for the end of its body, dropped.
        case refusing(HTTPError, HTTPRequestHead)
        /// The handler or a streamed body is running.
        case responding
        /// The connection is closing: everything further is dropped.
        case closing
    }

    /// A request head with the route that will serve it.
    private struct RoutedRequest {
        var head: HTTPRequestHead
        var handler: Route.Handler
        var maxBodyBytes: Int
        var parameters: [String: String]
    }

    private let responder: any HTTPResponder
    private let logger: Logger
    private var state = State.idle
    /// The body read so far of a `.readingBody` request, kept outside `state` so that appending to it
    /// does not copy it.
    private var collectedBody: ByteBuffer?
    /// The task of an async handler or a streamed body, cancelled if the client goes away.
    private var runningTask: Task<Void, Never>?

    private let crossOrigin: CrossOriginPolicy
    /// Whether a streaming handler has asked the connection to stop reading for now.
    private var readsPaused = false
    /// A read that came while paused, done once the handler wants more.
    private var pendingRead = false
    /// The request broke a limit while streaming: its answer closes the connection.
    private var closeAfterResponse = false

    /// Whether a refused request is answered only once its body has ended. On an HTTP/2 stream this
    /// lets the protocol check the body against `content-length` first (RFC 9113 §8.1.1); an HTTP/1.1
    /// connection answers at once and skips the body.
    private let refusesAfterBody: Bool

    init(responder: any HTTPResponder, crossOrigin: CrossOriginPolicy, logger: Logger, refusesAfterBody: Bool) {
        self.responder = responder
        self.crossOrigin = crossOrigin
        self.logger = logger
        self.refusesAfterBody = refusesAfterBody
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch (unwrapInboundIn(data), state) {
        case (.head(let head), .idle):
            receive(head, context: context)
        case (.body(var chunk), .readingBody(let routed)):
            guard (collectedBody?.readableBytes ?? 0) + chunk.readableBytes <= routed.maxBodyBytes else {
                collectedBody = nil
                respond(
                    .error(.bodyTooLarge(limit: routed.maxBodyBytes)),
                    to: routed.head,
                    close: true,
                    context: context
                )
                return
            }
            if collectedBody == nil {
                collectedBody = chunk
            } else {
                collectedBody!.writeBuffer(&chunk)
            }
        case (.body(let chunk), .streamingBody(let routed, let source, let received)):
            let total = received + chunk.readableBytes
            state = .streamingBody(routed, source: source, received: total)
            guard total <= routed.maxBodyBytes else {
                // The handler sees the error; its answer closes the connection.
                source.finish(HTTPError.bodyTooLarge(limit: routed.maxBodyBytes))
                closeAfterResponse = true
                return
            }
            if source.yield(chunk) == .stopProducing {
                readsPaused = true
            }
        case (.end, .streamingBody(_, let source, _)):
            source.finish()
            state = .responding
            resumeReading(context: context)
        case (.end, .readingBody(let routed)):
            let body = collectedBody ?? ByteBuffer()
            collectedBody = nil
            let request = Request(
                head: routed.head,
                body: body,
                parameters: routed.parameters,
                remoteAddress: context.channel.remoteAddress
            )
            run(routed.handler, for: request, context: context)
        case (.end, .skippingBody):
            state = .idle
        case (.end, .refusing(let error, let head)):
            state = .responding
            respond(.error(error), to: head, context: context)
        default:
            break  // Parts of a request answered early, or of a connection that is closing.
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .streamingBody(_, let source, _) = state {
            // The handler keeps running to account for what arrived (an upload keeps its bytes).
            source.finish(RequestBodyStream.ClientGone())
        } else {
            runningTask?.cancel()
        }
        runningTask = nil
        state = .closing
        context.fireChannelInactive()
    }

    func read(context: ChannelHandlerContext) {
        if readsPaused {
            pendingRead = true
        } else {
            context.read()
        }
    }

    private func resumeReading(context: ChannelHandlerContext) {
        readsPaused = false
        if pendingRead {
            pendingRead = false
            context.read()
        }
    }

    private func receive(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        switch responder.route(head) {
        case .failure(let error) where refusesAfterBody:
            state = .refusing(error, head)
        case .failure(let error):
            state = .skippingBody
            respond(.error(error), to: head, context: context)
        case .handler(let handler, let maxBodyBytes, let parameters):
            if let declared = head.headers.first(name: "content-length").flatMap(Int.init), declared > maxBodyBytes {
                respond(.error(.bodyTooLarge(limit: maxBodyBytes)), to: head, close: true, context: context)
                return
            }
            if head.expectsContinue {
                context.writeAndFlush(
                    wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue)))
                )
                .whenFailure { _ in }
            }
            let routed = RoutedRequest(head: head, handler: handler, maxBodyBytes: maxBodyBytes, parameters: parameters)
            if case .streaming(let handle) = handler {
                startStreaming(handle, routed, context: context)
            } else {
                state = .readingBody(routed)
            }
        }
    }

    /// Starts a streaming route's handler at once, with the body to come as a stream.
    private func startStreaming(
        _ handle: @escaping @Sendable (Request, RequestBodyStream) async throws -> Response,
        _ routed: RoutedRequest,
        context: ChannelHandlerContext
    ) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let (body, source) = RequestBodyStream.make {
            loopBound.execute { handler, context in handler.resumeReading(context: context) }
        }
        state = .streamingBody(routed, source: source, received: 0)
        let request = Request(
            head: routed.head,
            parameters: routed.parameters,
            remoteAddress: context.channel.remoteAddress
        )
        runningTask = Self.start({ try await handle($0, body) }, for: request, on: loopBound, logger: logger)
    }

    private func run(_ handler: Route.Handler, for request: Request, context: ChannelHandlerContext) {
        switch handler {
        case .immediate(let handle):
            state = .responding
            respond(response(from: { try handle(request) }, for: request), to: request.head, context: context)
        case .future(let handle):
            state = .responding
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            let logger = self.logger
            handle(request, context.eventLoop).whenComplete { result in
                let (handler, context) = loopBound.value
                let response: Response
                switch result {
                case .success(let success): response = success
                case .failure(let error): response = Self.response(to: error, for: request, logger: logger)
                }
                handler.respond(response, to: request.head, context: context)
            }
        case .async(let handle):
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            let logger = self.logger
            state = .responding
            runningTask = Self.start(handle, for: request, on: loopBound, logger: logger)
        case .streaming:
            preconditionFailure("Streaming routes start at their head")
        }
    }

    private static func start(
        _ handle: @escaping @Sendable (Request) async throws -> Response,
        for request: Request,
        on loopBound: NIOLoopBound<(HTTPRequestHandler, ChannelHandlerContext)>,
        logger: Logger
    ) -> Task<Void, Never> {
        Task { await respond(with: handle, to: request, on: loopBound, logger: logger) }
    }

    /// Runs an async handler and writes its response on the connection's event loop.
    private static func respond(
        with handle: @Sendable (Request) async throws -> Response,
        to request: Request,
        on loopBound: NIOLoopBound<(HTTPRequestHandler, ChannelHandlerContext)>,
        logger: Logger
    ) async {
        let response: Response
        do {
            response = try await handle(request)
        } catch is CancellationError {
            return  // The client is gone or the server is closing the connection.
        } catch {
            response = Self.response(to: error, for: request, logger: logger)
        }
        loopBound.execute { handler, context in
            handler.respond(response, to: request.head, context: context)
        }
    }

    private func response(from handle: () throws -> Response, for request: Request) -> Response {
        do {
            return try handle()
        } catch {
            return Self.response(to: error, for: request, logger: logger)
        }
    }

    private static func response(to error: any Error, for request: Request, logger: Logger) -> Response {
        if let error = HTTPError.of(error) {
            return .error(error)
        }
        logger.error("Handler failed", metadata: ["uri": "\(request.head.uri)", "error": "\(error)"])
        return .error(.internalError)
    }

    /// Writes `response`; afterwards the connection waits for the next request or, when the request or
    /// `close` says so, closes. `state` must already say whether parts of the request remain to be read.
    private func respond(
        _ response: Response,
        to request: HTTPRequestHead,
        close: Bool = false,
        context: ChannelHandlerContext
    ) {
        guard !isClosing else { return }
        var close = close || closeAfterResponse
        closeAfterResponse = false
        if case .streamingBody(_, let source, _) = state {
            // Answered before its body ended: the rest is not read, so the connection cannot be reused.
            source.finish()
            resumeReading(context: context)
            close = true
        }
        let keepAlive = request.isKeepAlive && !close
        var head = HTTPResponseHead(version: request.version, status: response.status, headers: response.headers)
        crossOrigin.apply(request: request, to: &head.headers)
        if !keepAlive {
            head.headers.replaceOrAdd(name: "connection", value: "close")
            state = .closing
        }
        let sendsBody = request.method != .HEAD
        let isEventStream = response.isEventStream
        if response.isHeld || isEventStream {
            context.triggerUserOutboundEvent(ResponseHeld(isEventStream: isEventStream), promise: nil)
        }
        switch response.body {
        case .buffer(let buffer):
            head.headers.replaceOrAdd(name: "content-length", value: String(buffer.readableBytes))
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            if sendsBody && buffer.readableBytes > 0 {
                context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            }
            finish(keepAlive: keepAlive, context: context)
        case .stream(let produce):
            context.writeAndFlush(wrapOutboundOut(.head(head)), promise: nil)
            guard sendsBody else {
                finish(keepAlive: keepAlive, context: context)
                return
            }
            stream(produce, keepAlive: keepAlive, context: context)
        }
    }

    /// Runs a streamed body's producer in a task; each chunk is written on the event loop and waited for,
    /// so a slow client slows the producer instead of filling memory.
    private func stream(
        _ produce: @escaping @Sendable (ResponseBodyWriter) async throws -> Void,
        keepAlive: Bool,
        context: ChannelHandlerContext
    ) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        let task = Task {
            let writer = ResponseBodyWriter { chunk in
                try await eventLoop.flatSubmit {
                    let (handler, context) = loopBound.value
                    return context.writeAndFlush(handler.wrapOutboundOut(.body(.byteBuffer(chunk))))
                }.get()
            }
            do {
                try await produce(writer)
                loopBound.execute { handler, context in handler.finish(keepAlive: keepAlive, context: context) }
            } catch {
                loopBound.execute { _, context in context.close(promise: nil) }
            }
        }
        runningTask = task
    }

    /// Ends the response; the connection then serves the next request or closes.
    private func finish(keepAlive: Bool, context: ChannelHandlerContext) {
        // The state changes first: writing the end lets the pipelining handler deliver the next
        // request at once, re-entering `channelRead`.
        runningTask = nil
        switch state {
        case _ where !keepAlive: state = .closing
        case .responding: state = .idle
        default: break  // `.skippingBody` waits for the request's end; `.closing` stays.
        }
        let ended = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let channel = context.channel
            ended.whenComplete { _ in channel.close(promise: nil) }
        }
    }

    private var isClosing: Bool {
        if case .closing = state { return true }
        return false
    }
}

extension NIOLoopBound {
    /// Runs `body` on the event loop with the bound handler and context.
    fileprivate func execute<Handler>(_ body: @escaping (Handler, ChannelHandlerContext) -> Void)
    where Value == (Handler, ChannelHandlerContext) {
        let loopBound = self
        eventLoop.execute {
            let (handler, context) = loopBound.value
            body(handler, context)
        }
    }
}

extension HTTPRequestHead {
    /// Whether the client sent `Expect: 100-continue` and waits for a go-ahead before the body.
    var expectsContinue: Bool {
        headers["expect"].contains { $0.lowercased() == "100-continue" }
    }
}
