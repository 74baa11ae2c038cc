import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOHTTP2
import NIOSSL
import NIOTLS

/// Builds the handlers of an accepted connection, nearest the socket first: byte counting; then TLS with
/// ALPN on the TLS listener, or the prior-knowledge check on the cleartext one; then HTTP/2, whose streams
/// are each served by the same request handlers, or the engine's HTTP/1.1 codec with the timeouts and the
/// protocol upgrades (WebSocket endpoints, the edge's relays); last the journey timing and the request
/// handler.
struct ConnectionPipeline: Sendable {
    let limits: HTTPLimits
    let http2: HTTP2Configuration
    let crossOrigin: CrossOriginPolicy
    let responder: any HTTPResponder
    let metrics: EngineMetrics
    let logger: Logger
    let accessLog: AccessLog?
    let webSockets: [WebSocketEndpoint]
    let protocolSwitches: [ProtocolSwitch]
    /// Terminates TLS first when set.
    let tls: NIOSSLContext?

    func configure(_ channel: any Channel) throws {
        metrics.acceptedConnections.increment()
        metrics.connections.increment()
        channel.closeFuture.whenComplete { _ in metrics.connections.decrement() }

        let activity = ConnectionActivity()
        let pipeline = channel.pipeline.syncOperations
        try pipeline.addHandler(SocketActivityHandler(activity: activity))
        if let tls {
            // A client that does not complete its handshake in time is closed (the HTTP timeouts start after).
            let handshakeDeadline = channel.eventLoop.scheduleTask(in: limits.headerReadTimeout) {
                channel.close(promise: nil)
            }
            channel.closeFuture.whenComplete { _ in handshakeDeadline.cancel() }
            try pipeline.addHandler(NIOSSLServerHandler(context: tls))
            // ALPN: `h2` gets HTTP/2 with a stream channel per request; anything else HTTP/1.1.
            try pipeline.addHandler(
                ApplicationProtocolNegotiationHandler { result in
                    handshakeDeadline.cancel()
                    activity.handshakeCompletedAt = .now()
                    return channel.eventLoop.makeCompletedFuture {
                        if case .negotiated("h2") = result {
                            try configureHTTP2(channel, activity: activity)
                        } else {
                            try configureHTTP1(channel, activity: activity)
                        }
                    }
                }
            )
        } else if http2.cleartext {
            try pipeline.addHandler(
                PriorKnowledgeDetector(idleTimeout: limits.idleTimeout, headerTimeout: limits.headerReadTimeout) {
                    version in
                    switch version {
                    case .http1: try configureHTTP1(channel, activity: activity)
                    case .http2: try configureHTTP2(channel, activity: activity)
                    }
                }
            )
        } else {
            try configureHTTP1(channel, activity: activity)
        }
    }

    /// Builds the HTTP/1.1 and HTTP/2 handlers once on embedded channels, before the listeners open, so
    /// that the Swift runtime instantiates their generic types (and checks their conformances) on one
    /// thread. Done for the first time by both event loops at once — a burst of connections right after
    /// start — that instantiation crashed inside the runtime (a null metadata pointer in
    /// `swift_conformsToProtocol`, seen once in CI).
    func warmUp() {
        for configure in [configureHTTP1, configureHTTP2] {
            let channel = EmbeddedChannel()
            try? configure(channel, ConnectionActivity())
            _ = try? channel.finish()
        }
    }

    /// HTTP/2: each stream is translated to HTTP/1 parts and served by the same request handlers, or is a
    /// WebSocket opened by extended CONNECT (RFC 8441) when an endpoint takes its path. The
    /// connection manager closes idle connections and, on graceful shutdown, sends `GOAWAY` and closes
    /// once the streams in flight have finished.
    private func configureHTTP2(_ channel: any Channel, activity: ConnectionActivity) throws {
        metrics.open(.http2, until: channel)
        let manager = NIOHTTP2ServerConnectionManagementHandler(
            eventLoop: channel.eventLoop,
            configuration: .init(maxIdleTime: limits.idleTimeout, maxAge: nil, maxGraceTime: nil, keepalive: nil)
        )
        var configuration = http2.handlerConfiguration(maxHeaderListSize: limits.maxHeaderBytes)
        if !webSockets.isEmpty {
            // RFC 8441: WebSockets may be opened as streams of this connection.
            configuration.connection.initialSettings.append(HTTP2Setting(parameter: .enableConnectProtocol, value: 1))
        }
        // Streams live on their connection's event loop, where its activity is kept.
        let connection = NIOLoopBound(activity, eventLoop: channel.eventLoop)
        let pipeline = channel.pipeline.syncOperations
        try pipeline.addHandler(ErrorGoAwayCloser())
        _ = try pipeline.configureHTTP2Pipeline(
            mode: .server,
            connectionConfiguration: configuration.connection,
            streamConfiguration: configuration.stream,
            streamDelegate: manager.http2StreamDelegate
        ) { stream in
            stream.eventLoop.makeCompletedFuture {
                let router = HTTP2StreamRouter(
                    webSockets: webSockets,
                    idleTimeout: limits.idleTimeout,
                    metrics: metrics
                ) { stream in
                    try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
                    try stream.pipeline.syncOperations.addHandlers(
                        requestHandlers(activity: connection.value, isStream: true)
                    )
                }
                try stream.pipeline.syncOperations.addHandler(router)
            }
        }
        try pipeline.addHandler(manager)
    }

    /// - Parameter isStream: the handlers serve one HTTP/2 stream rather than a whole connection.
    private func requestHandlers(activity: ConnectionActivity, isStream: Bool) -> [any RemovableChannelHandler] {
        [
            RequestJourneyHandler(
                activity: activity,
                metrics: metrics,
                accessLog: accessLog,
                isStream: isStream
            ),
            HTTPRequestHandler(
                responder: responder,
                crossOrigin: crossOrigin,
                logger: logger,
                refusesAfterBody: isStream
            ),
        ]
    }

    /// Makers of the protocol upgraders of one connection: WebSocket endpoints, then protocol switches.
    private var upgraders: [() -> any HTTPServerProtocolUpgrader] {
        let webSockets = self.webSockets
        let (idleTimeout, metrics) = (limits.idleTimeout, self.metrics)
        return
            (webSockets.isEmpty
            ? [] : [{ WebSocketEndpoint.makeUpgrader(for: webSockets, idleTimeout: idleTimeout, metrics: metrics) }])
            + protocolSwitches.map { protocolSwitch in { protocolSwitch.makeUpgrader() } }
    }

    /// HTTP/1.1: the engine's codec, the header and idle timeouts, the upgrade handler when anything can
    /// take an upgrade, then the request handlers.
    private func configureHTTP1(_ channel: any Channel, activity: ConnectionActivity) throws {
        metrics.open(.http1, until: channel)
        let refusals = Refusals(metrics: metrics, accessLog: accessLog)
        let codec = HTTP1ServerCodec(maxHeadBytes: limits.maxHeaderBytes, refusals: refusals)
        let timeouts = ConnectionTimeoutHandler(limits: limits, activity: activity, refusals: refusals)
        let requestHandlers = requestHandlers(activity: activity, isStream: false)
        let pipeline = channel.pipeline.syncOperations
        try pipeline.addHandlers([codec, timeouts])
        if !upgraders.isEmpty {
            try pipeline.addHandler(
                HTTP1UpgradeHandler(upgraders: upgraders, httpHandlers: [timeouts, codec] + requestHandlers)
            )
        }
        try pipeline.addHandlers(requestHandlers)
    }
}
