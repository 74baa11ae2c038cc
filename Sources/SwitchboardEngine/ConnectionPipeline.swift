import Logging
import NIOCore
import NIOHTTP1

/// Builds the handlers of an accepted HTTP/1.1 connection, nearest the socket first:
/// byte counting, the HTTP codec with the header limit, timeouts, pipelining, JSON parse errors,
/// journey timing, then the async channel its task reads.
struct ConnectionPipeline: Sendable {
    let limits: HTTPLimits
    let metrics: EngineMetrics
    let accessLogger: Logger?

    func configure(_ channel: any Channel) throws -> HTTPConnection.Channel {
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
        return try HTTPConnection.Channel(wrappingChannelSynchronously: channel)
    }
}
