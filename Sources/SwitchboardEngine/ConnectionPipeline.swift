import Logging
import NIOCore
import NIOHTTP1
import NIOSSL

/// Builds the handlers of an accepted HTTP/1.1 connection, nearest the socket first:
/// byte counting, TLS (on the TLS listener), the HTTP codec with the header limit, timeouts, pipelining, JSON parse errors, the
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
        let requestHandlers: [any RemovableChannelHandler] = [
            RequestJourneyHandler(activity: activity, metrics: metrics, accessLogger: accessLogger),
            HTTPRequestHandler(responder: responder, crossOrigin: crossOrigin, logger: logger),
        ]
        try pipeline.addHandler(SocketActivityHandler(activity: activity))
        if let tls {
            try pipeline.addHandler(NIOSSLServerHandler(context: tls))
        }
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
