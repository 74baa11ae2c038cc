import NIOCore
import NIOHTTP1
import NIOPosix

/// Keep-alive HTTP/1.1 connections to the upstreams of one cleartext cluster, kept apart per event loop:
/// a request is passed on over a connection of its client connection's own loop, so the exchange needs
/// no lock, no task and no thread switch. Idle connections wait for the next request; one that the
/// upstream closed meanwhile leaves the pool as it closes.
final class UpstreamConnectionPool: Sendable {
    private let loops: [ObjectIdentifier: NIOLoopBoundBox<LoopPool>]
    let connectTimeout: TimeAmount
    let idleTimeout: TimeAmount

    init(
        eventLoopGroup: any EventLoopGroup,
        maxIdlePerUpstream: Int,
        connectTimeout: TimeAmount,
        idleTimeout: TimeAmount
    ) {
        var loops: [ObjectIdentifier: NIOLoopBoundBox<LoopPool>] = [:]
        for loop in eventLoopGroup.makeIterator() {
            loops[ObjectIdentifier(loop)] = .makeBoxSendingValue(LoopPool(maxIdle: maxIdlePerUpstream), eventLoop: loop)
        }
        self.loops = loops
        self.connectTimeout = connectTimeout
        self.idleTimeout = idleTimeout
    }

    /// Whether `loop` has a pool here (it is one of the group's loops).
    func serves(_ loop: any EventLoop) -> Bool { loops[ObjectIdentifier(loop)] != nil }

    /// An idle connection to `upstream` on `loop`, or a new one; `reused` says which.
    func lease(_ upstream: UpstreamTarget, on loop: any EventLoop) -> EventLoopFuture<
        (UpstreamConnection, reused: Bool)
    > {
        let pool = loops[ObjectIdentifier(loop)]!.value
        if let idle = pool.takeIdle(upstream.address) {
            return loop.makeSucceededFuture((idle, true))
        }
        return connect(upstream, on: loop).map { ($0, false) }
    }

    /// Closes the idle connections of every loop (when a reload has replaced this pool).
    func closeIdle() {
        for box in loops.values {
            box.eventLoop.execute { box.value.closeAll() }
        }
    }

    /// A new connection to `upstream` on `loop`.
    func connect(_ upstream: UpstreamTarget, on loop: any EventLoop) -> EventLoopFuture<UpstreamConnection> {
        let idleTimeout = self.idleTimeout
        let bound = loops[ObjectIdentifier(loop)]!
        return ClientBootstrap(group: loop)
            .connectTimeout(connectTimeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = UpstreamExchangeHandler(idleTimeout: idleTimeout)
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(handler)
                    handler.release = { connection in bound.value.putIdle(connection, address: upstream.address) }
                }
            }
            .connectingTo(upstream)
            .flatMapThrowing { channel in
                UpstreamConnection(
                    channel: channel,
                    handler: try channel.pipeline.syncOperations.handler(type: UpstreamExchangeHandler.self)
                )
            }
    }
}

/// One loop's idle connections, by upstream address; used on that loop only.
private final class LoopPool {
    private var idle: [String: [UpstreamConnection]] = [:]
    private let maxIdle: Int

    init(maxIdle: Int) {
        self.maxIdle = maxIdle
    }

    func takeIdle(_ address: String) -> UpstreamConnection? {
        while let connection = idle[address]?.popLast() {
            if connection.channel.isActive { return connection }
        }
        return nil
    }

    func closeAll() {
        for connection in idle.values.joined() {
            connection.channel.close(promise: nil)
        }
        idle.removeAll()
    }

    func putIdle(_ connection: UpstreamConnection, address: String) {
        guard connection.channel.isActive, idle[address, default: []].count < maxIdle else {
            connection.channel.close(promise: nil)
            return
        }
        idle[address, default: []].append(connection)
    }
}

/// A connection to an upstream and the handler that runs its exchanges, one at a time.
struct UpstreamConnection: @unchecked Sendable {
    let channel: any Channel
    let handler: UpstreamExchangeHandler

    /// Sends a request without a body; `response` hears of the answer part by part. On a connection taken
    /// from the pool, `ifStale` runs instead when it turns out closed before any answer came (the upstream
    /// dropped it while idle), so that the request can go out again on a fresh one.
    func send(_ head: HTTPRequestHead, to response: UpstreamResponse, ifStale: (@Sendable () -> Void)? = nil) {
        handler.start(response, ifStale: ifStale)
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
    }
}

/// Runs one exchange at a time on an upstream connection: hands the response's parts to the waiting
/// `UpstreamResponse`, holds back reading while it is not ready for more (the connection otherwise reads
/// as bytes come, idle ones too, so that an upstream's close is seen at once), and when the response has
/// ended puts the connection back in its pool (or closes it, when either side said `Connection: close`).
/// Silence longer than the idle timeout while an exchange runs fails it.
final class UpstreamExchangeHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart

    struct Closed: Error {}
    struct Silent: Error {}

    var release: (UpstreamConnection) -> Void = { _ in }
    private let idleTimeout: TimeAmount
    private var context: ChannelHandlerContext?
    private var response: UpstreamResponse?
    private var ifStale: (@Sendable () -> Void)?
    private var keepAlive = true
    private var paused = false
    private var readHeld = false
    private var idleCheck: Scheduled<Void>?
    private var lastRead = NIODeadline.now()

    init(idleTimeout: TimeAmount) {
        self.idleTimeout = idleTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func start(_ response: UpstreamResponse, ifStale: (@Sendable () -> Void)?) {
        self.response = response
        self.ifStale = ifStale
        keepAlive = true
        lastRead = .now()
        if idleCheck == nil {
            armIdleCheck()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lastRead = .now()
        guard let response else { return }
        switch unwrapInboundIn(data) {
        case .head(let head):
            ifStale = nil
            keepAlive = head.isKeepAlive
            response.receiveHead(head)
        case .body(let bytes):
            let ready = response.receiveBody(bytes)
            paused = true
            // The response lives on this connection's loop (each loop has its own pool).
            ready.hop(to: context.eventLoop).assumeIsolated().whenComplete { [weak self] result in
                guard let self, let context = self.context else { return }
                self.paused = false
                self.lastRead = .now()
                if case .failure = result {
                    context.close(promise: nil)
                } else if self.readHeld {
                    self.readHeld = false
                    context.read()
                }
            }
        case .end:
            self.response = nil
            response.receiveEnd()
            if keepAlive {
                release(UpstreamConnection(channel: context.channel, handler: self))
            } else {
                context.close(promise: nil)
            }
        }
    }

    func read(context: ChannelHandlerContext) {
        if paused {
            readHeld = true
        } else {
            context.read()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(Closed())
        idleCheck?.cancel()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(error)
        context.close(promise: nil)
    }

    private func fail(_ error: any Error) {
        guard let response else { return }
        self.response = nil
        if let ifStale {
            self.ifStale = nil
            ifStale()
        } else {
            response.receiveError(error)
        }
    }

    /// Checks for silence while exchanges run. The check stays armed from one exchange to the next and is
    /// moved on only when it comes due, so that a busy connection schedules nothing per request.
    private func armIdleCheck() {
        guard let context else { return }
        let deadline = lastRead + idleTimeout
        idleCheck = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [weak self] in
            guard let self, let context = self.context else { return }
            self.idleCheck = nil
            guard self.response != nil else { return }  // idle between exchanges: the next one arms it
            if !self.paused, NIODeadline.now() - self.lastRead >= self.idleTimeout {
                self.fail(Silent())
                context.close(promise: nil)
            } else {
                self.armIdleCheck()
            }
        }
    }
}
