import NIOCore

/// The stages of one request's journey (the seed's "Request Journey"), each timed separately.
public enum JourneyStage: String, Sendable, CaseIterable {
    /// Accept to the completed TLS handshake (a TLS connection's first request only).
    case handshake
    /// Accept, or the handshake, to the request's first byte.
    case read
    /// First byte to the complete head.
    case parse
    /// Complete head to the end of the body.
    case decode
    /// End of the body to the response head handed to the engine (the handler's time).
    case process
    /// Response head to the last byte flushed to the socket.
    case write
}

/// Timestamps of one request, taken as it travels through the pipeline.
struct RequestJourney {
    var started: NIODeadline
    var handshakeCompleted: NIODeadline?
    var firstByte: NIODeadline
    var headParsed: NIODeadline
    var bodyRead: NIODeadline?
    var responseStarted: NIODeadline?
    var responseFlushed: NIODeadline?

    /// Seconds spent in each stage that has both of its ends.
    var stageDurations: [(JourneyStage, TimeAmount)] {
        var stages: [(JourneyStage, TimeAmount)] = []
        if let handshakeCompleted {
            stages.append((.handshake, handshakeCompleted - started))
        }
        stages.append((.read, firstByte - (handshakeCompleted ?? started)))
        stages.append((.parse, headParsed - firstByte))
        guard let bodyRead else { return stages }
        stages.append((.decode, bodyRead - headParsed))
        guard let responseStarted else { return stages }
        stages.append((.process, responseStarted - bodyRead))
        guard let responseFlushed else { return stages }
        stages.append((.write, responseFlushed - responseStarted))
        return stages
    }

    var total: TimeAmount { (responseFlushed ?? headParsed) - started }
}

extension TimeAmount {
    /// Milliseconds with three decimals (`12.345`), for logs; integer arithmetic, no formatter.
    public var millisecondsText: String {
        let microseconds = max(0, nanoseconds) / 1000
        let fraction = String(microseconds % 1000)
        return "\(microseconds / 1000)." + String(repeating: "0", count: 3 - fraction.utf8.count) + fraction
    }
}
