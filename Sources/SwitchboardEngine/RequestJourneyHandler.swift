import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// Times each request through its journey and, once the last response byte is flushed, records the
/// stage histograms and writes one access-log line.
final class RequestJourneyHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let activity: ConnectionActivity
    private let metrics: EngineMetrics
    private let accessLogger: Logger?

    private var journey: RequestJourney?
    private var request: HTTPRequestHead?
    private var status: HTTPResponseStatus = .ok
    /// Raw bytes read before the current request began, and written before its response began.
    private var bytesReadBefore = 0
    private var bytesWrittenBefore = 0
    private var isFirstRequest = true

    init(activity: ConnectionActivity, metrics: EngineMetrics, accessLogger: Logger?) {
        self.activity = activity
        self.metrics = metrics
        self.accessLogger = accessLogger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let now = NIODeadline.now()
        switch unwrapInboundIn(data) {
        case .head(let head):
            let firstByte = activity.takeRequestStart() ?? now
            // Only a connection's first request has a meaningful read stage: later ones would count
            // the client's own pause between requests.
            journey = RequestJourney(
                started: isFirstRequest ? activity.acceptedAt : firstByte,
                firstByte: firstByte,
                headParsed: now
            )
            isFirstRequest = false
            request = head
        case .body:
            break
        case .end:
            journey?.bodyRead = now
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head) where head.status.code >= 200:
            let now = NIODeadline.now()
            if journey?.bodyRead == nil {
                journey?.bodyRead = now  // Answered before the body ended (an early error).
            }
            journey?.responseStarted = now
            status = head.status
            bytesWrittenBefore = activity.bytesWritten
            context.write(data, promise: promise)
        case .end:
            let promise = promise ?? context.eventLoop.makePromise()
            let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
            promise.futureResult.whenSuccess { loopBound.value.responseFlushed() }
            context.write(data, promise: promise)
        default:
            context.write(data, promise: promise)
        }
    }

    private func responseFlushed() {
        guard var journey, let request else { return }
        journey.responseFlushed = .now()
        metrics.record(journey, status: status)
        let bytesIn = activity.bytesRead - bytesReadBefore
        let bytesOut = activity.bytesWritten - bytesWrittenBefore
        bytesReadBefore = activity.bytesRead
        self.journey = nil
        self.request = nil
        guard let accessLogger else { return }
        let stages = journey.stageDurations
            .map { "\($0.0.rawValue)=\(String(format: "%.3f", $0.1.milliseconds))" }
            .joined(separator: ",")
        accessLogger.info(
            "\(request.method.rawValue) \(Self.redacted(request.uri)) \(status.code)",
            metadata: [
                "bytes_in": "\(bytesIn)",
                "bytes_out": "\(bytesOut)",
                "duration_ms": "\(String(format: "%.3f", journey.total.milliseconds))",
                "stages_ms": "\(stages)",
            ]
        )
    }
}

extension RequestJourneyHandler {
    /// The request target with the values of secret query parameters (`access_token`) blanked, for logs.
    static func redacted(_ uri: String) -> String {
        guard let mark = uri.firstIndex(of: "?"), uri.contains("access_token=") else { return uri }
        let items = uri[uri.index(after: mark)...].split(separator: "&").map { item in
            item.hasPrefix("access_token=") ? "access_token=REDACTED" : String(item)
        }
        return uri[...mark] + items.joined(separator: "&")
    }
}
