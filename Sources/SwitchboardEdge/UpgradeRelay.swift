import NIOCore
import NIOHTTP1
import NIOPosix
import SwitchboardEngine

/// Relays a connection that switches protocols (WebSocket) through an `http` listener: the request goes
/// to an upstream of its route's cluster; when the upstream answers `101`, the client gets the same 101
/// and the two connections are glued, bytes both ways with backpressure. Any other answer declines the
/// switch, and the request is then proxied as a plain request.
struct UpgradeRelay: Sendable {
    /// The upgrade relay of the current configuration's proxy for a listener.
    let proxy: @Sendable () -> ReverseProxy

    var protocolSwitch: ProtocolSwitch {
        ProtocolSwitch(protocolName: "websocket") { head, client in
            relay(head, client: client, proxy: proxy())
        }
    }

    struct Declined: Error {}

    private func relay(_ head: HTTPRequestHead, client: any Channel, proxy: ReverseProxy) -> EventLoopFuture<
        ProtocolSwitch.Accepted
    > {
        let loop = client.eventLoop
        guard let route = proxy.routes.first(where: { $0.matches(head) }),
            let upstream = route.cluster.pick(key: client.remoteAddress?.ipAddress)
        else { return loop.makeFailedFuture(Declined()) }
        let cluster = route.cluster
        let switched = SettledOnce(loop.makePromise(of: HTTPResponseHead.self))
        let glued = SettledOnce(loop.makePromise(of: Void.self))
        let catcher = DeclineCatcher(switched: switched)
        let upgrader = RelayUpgrader(
            protocolName: head.headers.first(name: "upgrade") ?? "websocket",
            switched: switched,
            catcher: catcher,
            glued: glued
        )
        var request = head
        request.headers = ProxyHeaders.removingHopByHop(head.headers)
        ProxyHeaders.addForwarding(
            to: &request.headers,
            client: client.remoteAddress,
            scheme: proxy.scheme,
            trustIncoming: proxy.trustForwarded
        )
        let outgoing = request
        // The upstream connection is made on the client's loop, where the relay is set up.
        let handlers = NIOLoopBound((upgrader, catcher), eventLoop: loop)
        return ClientBootstrap(group: loop)
            .connectTimeout(cluster.connectTimeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let (upgrader, catcher) = handlers.value
                    try channel.pipeline.syncOperations.addHTTPClientHandlers(
                        leftOverBytesStrategy: .forwardBytes,
                        withClientUpgrade: (upgraders: [upgrader], completionHandler: { _ in })
                    )
                    try channel.pipeline.syncOperations.addHandler(catcher)
                }
            }
            .connectingTo(upstream)
            .flatMap { origin in
                // However the relay ends, the upgrade handler waiting for the glue is released.
                origin.closeFuture.whenComplete { _ in glued.fail(ChannelError.ioOnClosedChannel) }
                origin.write(HTTPClientRequestPart.head(outgoing), promise: nil)
                origin.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
                return switched.futureResult.map { response in
                    upstream.begin()
                    origin.closeFuture.whenComplete { _ in upstream.end() }
                    return ProtocolSwitch.Accepted(headers: response.headers) { client in
                        // The client's half first, then the upstream's, whose upgrade handler then leaves and
                        // hands on what the upstream sent after its 101.
                        let (clientHalf, originHalf) = GlueHandler.matchedPair()
                        do {
                            try client.pipeline.syncOperations.addHandler(clientHalf)
                            try origin.pipeline.syncOperations.addHandler(originHalf)
                            glued.succeed(())
                        } catch {
                            glued.fail(error)
                            origin.close(promise: nil)
                            return client.eventLoop.makeFailedFuture(error)
                        }
                        return client.eventLoop.makeSucceededVoidFuture()
                    }
                }.flatMapErrorThrowing { error in
                    origin.close(promise: nil)
                    throw error
                }
            }.flatMapErrorThrowing { error in
                if !(error is Declined) {
                    cluster.recordFailure(upstream)
                }
                glued.fail(error)
                throw error
            }
    }
}

/// A promise that whichever party gets there first settles, and the others leave alone; used on the
/// connections' event loop only.
private final class SettledOnce<Value: Sendable>: @unchecked Sendable {
    let promise: EventLoopPromise<Value>
    private var settled = false

    init(_ promise: EventLoopPromise<Value>) {
        self.promise = promise
    }

    var futureResult: EventLoopFuture<Value> { promise.futureResult }

    func succeed(_ value: Value) {
        guard !settled else { return }
        settled = true
        promise.succeed(value)
    }

    func fail(_ error: any Error) {
        guard !settled else { return }
        settled = true
        promise.fail(error)
    }
}

/// NIO's client-side upgrade for whatever protocol the client asked for: it accepts any 101, reports it,
/// and finishes once the connections are glued.
private final class RelayUpgrader: NIOHTTPClientProtocolUpgrader, @unchecked Sendable {
    let supportedProtocol: String
    let requiredUpgradeHeaders: [String] = []
    private let switched: SettledOnce<HTTPResponseHead>
    private let catcher: DeclineCatcher
    private let glued: SettledOnce<Void>

    init(
        protocolName: String,
        switched: SettledOnce<HTTPResponseHead>,
        catcher: DeclineCatcher,
        glued: SettledOnce<Void>
    ) {
        self.supportedProtocol = protocolName
        self.switched = switched
        self.catcher = catcher
        self.glued = glued
    }

    func addCustom(upgradeRequestHeaders: inout HTTPHeaders) {}

    func shouldAllowUpgrade(upgradeResponse: HTTPResponseHead) -> Bool { true }

    func upgrade(context: ChannelHandlerContext, upgradeResponse: HTTPResponseHead) -> EventLoopFuture<Void> {
        context.pipeline.syncOperations.removeHandler(catcher, promise: nil)
        switched.succeed(upgradeResponse)
        return glued.futureResult
    }
}

/// Sees what reaches past the upgrade handler: a response that is not a 101, or an error, declines.
private final class DeclineCatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart

    private let switched: SettledOnce<HTTPResponseHead>

    init(switched: SettledOnce<HTTPResponseHead>) {
        self.switched = switched
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switched.fail(UpgradeRelay.Declined())
        context.close(promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switched.fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        switched.fail(UpgradeRelay.Declined())
        context.fireChannelInactive()
    }
}
