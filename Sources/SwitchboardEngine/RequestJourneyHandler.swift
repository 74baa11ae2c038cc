import Logging
import NIOCore
import NIOHTTP1

/// Times each request through its journey and, once the last response byte is flushed, records the
/// stage histograms and writes one access-log line. On an HTTP/2 stream the journey begins with the
/// stream's head, and the bytes logged are the stream's bodies (the connection's are shared by all).
final class RequestJourneyHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let activity: ConnectionActivity
    private let metrics: EngineMetrics
    private let accessLog: AccessLog?
    private let isStream: Bool

    private var journey: RequestJourney?
    private var request: HTTPRequestHead?
    private var status: HTTPResponseStatus = .ok
    /// Raw bytes read before the current request began, and written before its response began.
    private var bytesReadBefore = 0
    private var bytesWrittenBefore = 0
    private var isFirstRequest = true
    /// Body bytes of the stream both ways, counted on HTTP/2 streams only.
    private var streamBytesIn = 0
    private var streamBytesOut = 0
    /// Whether the response being written is a Server-Sent Events stream, counted as a session until it ends.
    private var isEventStream = false
    /// Whether the response being written was held open on purpose (an event stream, a long poll).
    private var wasHeld = false

    init(activity: ConnectionActivity, metrics: EngineMetrics, accessLog: AccessLog?, isStream: Bool) {
        self.activity = activity
        self.metrics = metrics
        self.accessLog = accessLog
        self.isStream = isStream
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let now = NIODeadline.now()
        switch unwrapInboundIn(data) {
        case .head(let head):
            journey = isStream ? RequestJourney(started: now, firstByte: now, headParsed: now) : connectionJourney(now)
            isFirstRequest = false
            request = head
        case .body(let body):
            streamBytesIn += isStream ? body.readableBytes : 0
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
        case .body(let body):
            streamBytesOut += isStream ? body.readableBytes : 0
            context.write(data, promise: promise)
        case .end:
            endEventStream()
            // What the log line needs is taken now: a pipelined request may begin before the flush.
            guard let journey, let request else {
                context.write(data, promise: promise)
                return
            }
            let finished = FinishedRequest(
                journey: journey,
                head: request,
                status: status,
                wasHeld: wasHeld,
                bytesWrittenBefore: bytesWrittenBefore,
                streamBytes: (streamBytesIn, streamBytesOut)
            )
            self.journey = nil
            self.request = nil
            wasHeld = false
            let promise = promise ?? context.eventLoop.makePromise()
            let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
            promise.futureResult.whenSuccess { loopBound.value.responseFlushed(finished) }
            context.write(data, promise: promise)
        default:
            context.write(data, promise: promise)
        }
    }

    /// `ResponseHeld`, from the request handler before it writes a held response's head.
    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        if let held = event as? ResponseHeld {
            wasHeld = true
            if held.isEventStream && !isEventStream {
                isEventStream = true
                metrics.opened(.sse)
            }
            promise?.succeed()
        } else {
            context.triggerUserOutboundEvent(event, promise: promise)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        endEventStream()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        endEventStream()
    }

    private func endEventStream() {
        guard isEventStream else { return }
        isEventStream = false
        metrics.closed(.sse)
    }

    /// Only a connection's first request has meaningful handshake and read stages: later ones would
    /// count the client's own pause between requests. The first bytes of a TLS connection are its
    /// handshake, so its request begins no earlier than the handshake's end.
    private func connectionJourney(_ now: NIODeadline) -> RequestJourney {
        var firstByte = activity.takeRequestStart() ?? now
        guard isFirstRequest else {
            return RequestJourney(started: firstByte, firstByte: firstByte, headParsed: now)
        }
        let handshake = activity.handshakeCompletedAt
        firstByte = max(firstByte, handshake ?? firstByte)
        return RequestJourney(
            started: activity.acceptedAt,
            handshakeCompleted: handshake,
            firstByte: firstByte,
            headParsed: now
        )
    }

    /// A response whose end was written, waiting for its flush.
    private struct FinishedRequest {
        var journey: RequestJourney
        var head: HTTPRequestHead
        var status: HTTPResponseStatus
        var wasHeld: Bool
        var bytesWrittenBefore: Int
        var streamBytes: (in: Int, out: Int)
    }

    private func responseFlushed(_ finished: FinishedRequest) {
        var journey = finished.journey
        journey.responseFlushed = .now()
        metrics.record(journey, head: finished.head, status: finished.status, wasHeld: finished.wasHeld)
        let bytesIn = isStream ? finished.streamBytes.in : activity.bytesRead - bytesReadBefore
        let bytesOut = isStream ? finished.streamBytes.out : activity.bytesWritten - finished.bytesWrittenBefore
        bytesReadBefore = activity.bytesRead
        guard let accessLog else { return }
        var stages = ""
        for (stage, duration) in journey.stageDurations {
            stages += stages.isEmpty ? stage.rawValue : "," + stage.rawValue
            stages += "=" + duration.millisecondsText
        }
        accessLog.write(
            "\(finished.head.method.rawValue) \(Self.redacted(finished.head.uri)) \(finished.status.code)",
            fields: [
                "bytes_in": String(bytesIn),
                "bytes_out": String(bytesOut),
                "duration_ms": journey.total.millisecondsText,
                "stages_ms": stages,
            ],
            source: "SwitchboardEngine"
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

/// Says that the response about to be written is held open on purpose: a long poll (`Response.isHeld`)
/// or a Server-Sent Events stream.
struct ResponseHeld {
    var isEventStream: Bool
}
