import Logging
import NIOCore
import NIOHTTP1

/// Builds the handlers of an accepted HTTP/1.1 connection, nearest the socket first:
/// byte counting, the HTTP codec with the header limit, timeouts, pipelining, JSON parse errors,
/// journey timing, then the request handler.
struct ConnectionPipeline: Sendable {
    let limits: HTTPLimits
    let responder: any HTTPResponder
    let metrics: EngineMetrics
    let logger: Logger
    let accessLogger: Logger?

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
        try pipeline.addHandler(SocketActivityHandler(activity: activity))
        try pipeline.addHandler(HTTPResponseEncoder(configuration: .init()))
        try pipeline.addHandler(ByteToMessageHandler(HTTPRequestDecoder(limitConfiguration: decoderLimits)))
        try pipeline.addHandler(ConnectionTimeoutHandler(limits: limits, activity: activity, refusals: refusals))
        try pipeline.addHandler(HTTPServerPipelineHandler())
        try pipeline.addHandler(ProtocolErrorHandler(refusals: refusals))
        try pipeline.addHandler(RequestJourneyHandler(activity: activity, metrics: metrics, accessLogger: accessLogger))
        try pipeline.addHandler(HTTPRequestHandler(responder: responder, logger: logger))
    }
}
