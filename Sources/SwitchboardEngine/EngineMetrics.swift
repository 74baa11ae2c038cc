import CoreMetrics
import NIOCore
import NIOHTTP1

/// The engine's metrics, created from an injected factory so that each server can own its registry.
public struct EngineMetrics: Sendable {
    /// One timer per stage, in `JourneyStage.allCases` order (an array: no hashing per request).
    private let stageTimers: [Timer]
    private let requestTimer: Timer
    private let requestsByClass: [Counter]
    private let refusedRequests: [String: Counter]
    let connections: Meter
    let acceptedConnections: Counter
    private let openSessions: [Transport: Meter]
    let slowRequests: SlowRequests
    let listeners: ListenerDirectory

    /// What `switchboard_transport_sessions{transport}` counts: HTTP/1.1 and HTTP/2 connections, and the
    /// WebSocket and Server-Sent Events sessions open on them.
    enum Transport: String, CaseIterable {
        case http1
        case http2
        case websocket
        case sse
    }

    /// Histogram buckets for the engine's timers, by label, for a metrics backend to apply: a request's
    /// stages take microseconds to seconds, finer than the usual buckets (5 ms to 10 s) tell apart.
    public static let histogramBuckets: [String: [Duration]] = [
        "switchboard_request_stage_seconds": [
            .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1),
            .microseconds(2500), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
            .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500),
            .seconds(5), .seconds(10),
        ]
    ]

    /// - Parameters:
    ///   - slowRequests: where the slowest requests are kept; servers that share one list them together.
    ///   - listeners: where the server records what its listening sockets serve.
    public init(
        factory: any MetricsFactory,
        slowRequests: SlowRequests = SlowRequests(),
        listeners: ListenerDirectory = ListenerDirectory()
    ) {
        self.slowRequests = slowRequests
        self.listeners = listeners
        self.openSessions = Dictionary(
            uniqueKeysWithValues: Transport.allCases.map { transport in
                let dimensions = [("transport", transport.rawValue)]
                return (
                    transport, Meter(label: "switchboard_transport_sessions", dimensions: dimensions, factory: factory)
                )
            }
        )
        self.requestsByClass = (1...5).map { leading in
            Counter(
                label: "switchboard_requests_total",
                dimensions: [("status_class", "\(leading)xx")],
                factory: factory
            )
        }
        self.stageTimers = JourneyStage.allCases.map { stage in
            Timer(label: "switchboard_request_stage_seconds", dimensions: [("stage", stage.rawValue)], factory: factory)
        }
        self.requestTimer = Timer(label: "switchboard_request_seconds", factory: factory)
        self.refusedRequests = Dictionary(
            uniqueKeysWithValues: Refusals.codes.map { code in
                (
                    code,
                    Counter(label: "switchboard_refused_requests_total", dimensions: [("code", code)], factory: factory)
                )
            }
        )
        self.connections = Meter(label: "switchboard_open_connections", factory: factory)
        self.acceptedConnections = Counter(label: "switchboard_accepted_connections_total", factory: factory)
    }

    /// Times the stages of a finished request, counts its status and keeps it if it is among the slowest,
    /// unless it was held open on purpose (an event stream, a long poll): its time is then the client's.
    func record(_ journey: RequestJourney, head: HTTPRequestHead, status: HTTPResponseStatus, wasHeld: Bool) {
        for (stage, duration) in journey.stageDurations {
            stageTimers[stage.position].recordNanoseconds(duration.nanoseconds)
        }
        requestTimer.recordNanoseconds(journey.total.nanoseconds)
        requestsByClass[min(max(Int(status.code) / 100, 1), 5) - 1].increment()
        if !wasHeld {
            slowRequests.consider(journey, head: head, status: status)
        }
    }

    /// Counts a session of `transport` open until `channel` closes.
    func open(_ transport: Transport, until channel: any Channel) {
        let meter = openSessions[transport]!
        meter.increment()
        channel.closeFuture.whenComplete { _ in meter.decrement() }
    }

    /// Counts a session of `transport` on a channel that outlives it, until `closed`.
    func opened(_ transport: Transport) {
        openSessions[transport]!.increment()
    }

    func closed(_ transport: Transport) {
        openSessions[transport]!.decrement()
    }

    func recordRefusal(_ error: HTTPError) {
        (refusedRequests[error.code] ?? refusedRequests["malformed_request"])?.increment()
    }
}

extension JourneyStage {
    private static let ordered = allCases

    /// The stage's place in `allCases` (six cases: a scan is cheaper than hashing).
    fileprivate var position: Int { Self.ordered.firstIndex(of: self)! }
}
