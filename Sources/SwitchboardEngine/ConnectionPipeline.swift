import Logging
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOSSL
import NIOTLS

/// Builds the handlers of an accepted connection, nearest the socket first: byte counting, TLS with ALPN
/// (on the TLS listener; `h2` gets HTTP/2, its streams served by the same request handlers), the HTTP codec with the header limit, timeouts, pipelining, JSON parse errors, the
/// WebSocket upgrade (when an endpoint is configured), journey timing, then the request handler.
struct ConnectionPipeline: Sendable {
    let limits: HTTPLimits
    let crossOrigin: CrossOriginPolicy
    let responder: any HTTPResponder
    let metrics: EngineMetrics
    let logger: Logger
    let accessLogger: Logger?
    let webSockets: [WebSocketEndpoint]
    /// Terminates TLS first when set.
    let tls: NIOSSLContext?

    func configure(_ channel: any Channel) throws {
        metrics.acceptedConnections.increment()
        metrics.connections.increment()
        channel.closeFuture.whenComplete { _ in metrics.connections.decrement() }

        let activity = ConnectionActivity()
        let pipeline = channel.pipeline.syncOperations
        try pipeline.addHandler(SocketActivityHandler(activity: activity))
        guard let tls else {
            try configureHTTP1(channel, activity: activity)
            return
        }
        try pipeline.addHandler(NIOSSLServerHandler(context: tls))
        // ALPN: `h2` gets HTTP/2 with a stream channel per request; anything else HTTP/1.1.
        try pipeline.addHandler(
            ApplicationProtocolNegotiationHandler { result in
                if case .negotiated("h2") = result {
                    return configureHTTP2(channel, activity: activity)
                }
                return channel.eventLoop.makeCompletedFuture { try configureHTTP1(channel, activity: activity) }
            }
        )
    }

    /// HTTP/2: each stream is translated to HTTP/1 parts and served by the same request handlers.
    private func configureHTTP2(_ channel: any Channel, activity: ConnectionActivity) -> EventLoopFuture<Void> {
        // Streams live on their connection's event loop, where its activity is kept.
        let connection = NIOLoopBound(activity, eventLoop: channel.eventLoop)
        return channel.configureHTTP2Pipeline(mode: .server) { stream in
            stream.eventLoop.makeCompletedFuture {
                try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
                try stream.pipeline.syncOperations.addHandlers(requestHandlers(activity: connection.value))
            }
        }.map { _ in }
    }

    private func requestHandlers(activity: ConnectionActivity) -> [any RemovableChannelHandler] {
        [
            RequestJourneyHandler(activity: activity, metrics: metrics, accessLogger: accessLogger),
            HTTPRequestHandler(responder: responder, crossOrigin: crossOrigin, logger: logger),
        ]
    }

    private func configureHTTP1(_ channel: any Channel, activity: ConnectionActivity) throws {
        let refusals = Refusals(metrics: metrics, accessLogger: accessLogger)
        var decoderLimits = NIOHTTPDecoderLimitConfiguration()
        decoderLimits.maxHeaderListSize = limits.maxHeaderBytes
        decoderLimits.maxHeaderFieldSize = limits.maxHeaderBytes
        let pipeline = channel.pipeline.syncOperations
        let encoder = HTTPResponseEncoder(configuration: .init())
        let decoder = ByteToMessageHandler(
            HTTPRequestDecoder(
                leftOverBytesStrategy: webSockets.isEmpty ? .dropBytes : .forwardBytes,
                limitConfiguration: decoderLimits
            )
        )
        let httpHandlers: [any RemovableChannelHandler] = [
            decoder,
            ConnectionTimeoutHandler(limits: limits, activity: activity, refusals: refusals),
            HTTPServerPipelineHandler(),
            ProtocolErrorHandler(refusals: refusals),
        ]
        let requestHandlers = requestHandlers(activity: activity)
        try pipeline.addHandler(encoder)
        try pipeline.addHandlers(httpHandlers)
        if !webSockets.isEmpty {
            try pipeline.addHandler(
                HTTPServerUpgradeHandler(
                    upgraders: webSockets.map { $0.makeUpgrader() },
                    httpEncoder: encoder,
                    extraHTTPHandlers: httpHandlers + requestHandlers,
                    upgradeCompletionHandler: { _ in }
                )
            )
        }
        try pipeline.addHandlers(requestHandlers)
    }
}
