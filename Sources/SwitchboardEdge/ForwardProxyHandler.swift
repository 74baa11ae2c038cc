import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import SwitchboardEngine

/// A `forward` listener's connection: `CONNECT host:port` opens a tunnel, an absolute-form request
/// (`GET http://host/path`) is passed on in origin form with `Connection: close` and its response relayed
/// as it comes. Before anything is opened: Basic proxy authentication (407), the destination port (403
/// `port_not_allowed`), and the resolved address, refused on loopback, private, link-local and metadata
/// networks unless allowed (403 `destination_not_allowed`). The address checked is the one connected to.
final class ForwardProxyHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    struct Rules: Sendable {
        var ports: Set<Int>
        var allowedNetworks: [IPNetwork]
        /// The expected `Proxy-Authorization` value; `nil` when anyone may use the proxy.
        var credentials: String?
        var connectTimeout: TimeAmount
    }

    private enum State {
        case awaitingHead
        /// Connecting; request parts that arrive meanwhile wait.
        case connecting(pending: [HTTPServerRequestPart])
        /// Relaying an absolute-form request's parts to the origin.
        case relaying(any Channel)
        case tunnelling
        case refused
    }

    private let rules: Rules
    private let encoder: HTTPResponseEncoder
    private let decoder: ByteToMessageHandler<HTTPRequestDecoder>
    private let logger: Logger
    private let accessLog: AccessLog?
    private var state = State.awaitingHead
    /// Closes a connection whose request head has not come within 10 s.
    private var headDeadline: Scheduled<Void>?

    init(
        rules: Rules,
        encoder: HTTPResponseEncoder,
        decoder: ByteToMessageHandler<HTTPRequestDecoder>,
        logger: Logger,
        accessLog: AccessLog?
    ) {
        self.rules = rules
        self.encoder = encoder
        self.decoder = decoder
        self.logger = logger
        self.accessLog = accessLog
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        headDeadline = context.eventLoop.scheduleTask(in: .seconds(10)) { channel.close(promise: nil) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        headDeadline?.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        switch state {
        case .awaitingHead:
            guard case .head(let head) = part else { return }
            headDeadline?.cancel()
            start(head, context: context)
        case .connecting(var pending):
            pending.append(part)
            state = .connecting(pending: pending)
        case .relaying(let origin):
            relay(part, to: origin)
        case .tunnelling, .refused:
            break
        }
    }

    private func start(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        if let credentials = rules.credentials, head.headers.first(name: "proxy-authorization") != credentials {
            return refuse(
                .proxyAuthenticationRequired,
                code: "proxy_auth_required",
                "Proxy authentication is required",
                headers: ["Proxy-Authenticate": "Basic realm=\"switchboard\""],
                context: context
            )
        }
        guard let target = Target(head) else {
            return refuse(
                .badRequest,
                code: "not_a_proxy_request",
                "Expected CONNECT host:port or an absolute http:// URL",
                context: context
            )
        }
        guard rules.ports.contains(target.port) else {
            return refuse(.forbidden, code: "port_not_allowed", "Port \(target.port) is not allowed", context: context)
        }
        state = .connecting(pending: [])
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let rules = self.rules
        let eventLoop = context.eventLoop
        NIOThreadPool.singleton.runIfActive(eventLoop: eventLoop) {
            try SocketAddress.makeAddressResolvingHost(target.host, port: target.port)
        }.flatMap { address -> EventLoopFuture<any Channel> in
            let isNonPublic = IPNetwork.nonPublic.contains { $0.contains(address) }
            guard !isNonPublic || rules.allowedNetworks.contains(where: { $0.contains(address) }) else {
                return eventLoop.makeFailedFuture(Refusal.destinationNotAllowed(address))
            }
            return ClientBootstrap(group: eventLoop)
                .connectTimeout(rules.connectTimeout)
                .channelOption(.allowRemoteHalfClosure, value: true)
                .connect(to: address)
        }.whenComplete { result in
            let (handler, context) = loopBound.value
            switch result {
            case .success(let origin):
                target.isTunnel
                    ? handler.openTunnel(to: origin, context: context)
                    : handler.startRelay(head, target: target, to: origin, context: context)
            case .failure(Refusal.destinationNotAllowed(let address)):
                handler.refuse(
                    .forbidden,
                    code: "destination_not_allowed",
                    "\(target.host) resolves to \(address.ipAddress ?? "?"), which this proxy does not reach",
                    context: context
                )
            case .failure(let error):
                handler.refuse(
                    .badGateway,
                    code: "destination_unreachable",
                    "\(target.host): \(error)",
                    context: context
                )
            }
        }
    }

    /// `200 Connection Established`, then the HTTP handlers leave and the bytes are glued. The answer is
    /// written as bytes: a 2xx to CONNECT carries no framing headers (RFC 9110 §9.3.6), which the
    /// response encoder would add.
    private func openTunnel(to origin: any Channel, context: ChannelHandlerContext) {
        state = .tunnelling
        let pipeline = context.pipeline.syncOperations
        let (client, server) = GlueHandler.matchedPair()
        GlueHandler.logWhenClosed(
            context.channel,
            halves: (client, server),
            listener: "CONNECT",
            target: origin.remoteAddress?.description ?? "?",
            to: accessLog
        )
        do {
            // The encoder's removal completes at once: it keeps no state to flush.
            pipeline.removeHandler(encoder, promise: nil)
            try origin.pipeline.syncOperations.addHandler(server)
            try pipeline.addHandler(client, position: .after(decoder))
        } catch {
            context.close(promise: nil)
            origin.close(promise: nil)
            return
        }
        context.writeAndFlush(NIOAny(ByteBuffer(string: "HTTP/1.1 200 Connection Established\r\n\r\n")), promise: nil)
        // The decoder hands on the bytes that came after the head as it leaves.
        pipeline.removeHandler(decoder, promise: nil)
        pipeline.removeHandler(context: context, promise: nil)
    }

    /// The request in origin form to the origin, whose raw response is relayed to the client.
    private func startRelay(
        _ head: HTTPRequestHead,
        target: Target,
        to origin: any Channel,
        context: ChannelHandlerContext
    ) {
        guard case .connecting(let pending) = state else { return }
        let client = context.channel
        do {
            try origin.pipeline.syncOperations.addHandler(HTTPRequestEncoder())
            try origin.pipeline.syncOperations.addHandler(RawRelay(to: client))
        } catch {
            origin.close(promise: nil)
            return refuse(.badGateway, code: "destination_unreachable", "\(error)", context: context)
        }
        // From here the client gets the origin's bytes as they are.
        context.pipeline.syncOperations.removeHandler(encoder, promise: nil)
        origin.closeFuture.whenComplete { _ in client.close(promise: nil) }
        client.closeFuture.whenComplete { _ in origin.close(promise: nil) }
        var rewritten = head
        rewritten.uri = target.originForm
        rewritten.headers = ProxyHeaders.removingHopByHop(head.headers)
        rewritten.headers.replaceOrAdd(name: "Connection", value: "close")
        if head.hasBody, let length = head.headers.first(name: "content-length") {
            rewritten.headers.replaceOrAdd(name: "Content-Length", value: length)
        } else if head.headers.contains(name: "transfer-encoding") {
            rewritten.headers.replaceOrAdd(name: "Transfer-Encoding", value: "chunked")
        }
        state = .relaying(origin)
        origin.write(HTTPClientRequestPart.head(rewritten), promise: nil)
        for part in pending {
            relay(part, to: origin)
        }
        origin.flush()
    }

    private func relay(_ part: HTTPServerRequestPart, to origin: any Channel) {
        switch part {
        case .head: break
        case .body(let bytes): origin.write(HTTPClientRequestPart.body(.byteBuffer(bytes)), promise: nil)
        case .end(let trailers): origin.writeAndFlush(HTTPClientRequestPart.end(trailers), promise: nil)
        }
    }

    private func refuse(
        _ status: HTTPResponseStatus,
        code: String,
        _ message: String,
        headers extra: HTTPHeaders = [:],
        context: ChannelHandlerContext
    ) {
        state = .refused
        logger.info("Forward proxy refused", metadata: ["code": "\(code)", "message": "\(message)"])
        let error = HTTPError(status, code: code, message: message)
        let body = error.jsonBody
        var headers = extra
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(body.readableBytes))
        headers.add(name: "Connection", value: "close")
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))),
            promise: nil
        )
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if case .awaitingHead = state, error is HTTPParserError {
            return refuse(.badRequest, code: "malformed_request", "\(error)", context: context)
        }
        context.close(promise: nil)
    }

    private enum Refusal: Error {
        case destinationNotAllowed(SocketAddress)
    }
}

/// Where a proxy request goes: `CONNECT host:port`, or an absolute `http://` URL.
private struct Target: Sendable {
    let host: String
    let port: Int
    let isTunnel: Bool
    /// The path and query for the origin.
    let originForm: String

    init?(_ head: HTTPRequestHead) {
        if head.method == .CONNECT {
            guard let colon = head.uri.lastIndex(of: ":"), let port = Int(head.uri[head.uri.index(after: colon)...])
            else { return nil }
            var host = String(head.uri[..<colon])
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            guard !host.isEmpty else { return nil }
            (self.host, self.port, isTunnel, originForm) = (host, port, true, "")
            return
        }
        guard let url = URLComponents(string: head.uri), url.scheme?.lowercased() == "http", let host = url.host,
            !host.isEmpty
        else { return nil }
        let path = url.percentEncodedPath.isEmpty ? "/" : url.percentEncodedPath
        (self.host, port, isTunnel) = (host, url.port ?? 80, false)
        originForm = path + (url.percentEncodedQuery.map { "?\($0)" } ?? "")
    }
}

/// Writes whatever the origin sends to the client as it is, and reads the origin only while the client
/// can take more (its watcher says when it can again).
private final class RawRelay: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = Never

    private let client: any Channel
    private var context: ChannelHandlerContext?
    private var readPending = false

    init(to client: any Channel) {
        self.client = client
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let watcher = WritabilityWatcher { [weak self] in self?.clientBecameWritable() }
        try? client.pipeline.syncOperations.addHandler(watcher)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        client.write(unwrapInboundIn(data), promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        client.flush()
    }

    func read(context: ChannelHandlerContext) {
        if client.isWritable {
            context.read()
        } else {
            readPending = true
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func clientBecameWritable() {
        guard readPending, let context else { return }
        readPending = false
        context.read()
    }
}

/// Tells its owner when its channel becomes writable again.
private final class WritabilityWatcher: ChannelInboundHandler {
    typealias InboundIn = Any

    private let becameWritable: () -> Void

    init(_ becameWritable: @escaping () -> Void) {
        self.becameWritable = becameWritable
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            becameWritable()
        }
        context.fireChannelWritabilityChanged()
    }
}
