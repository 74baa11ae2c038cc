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

    public init(factory: any MetricsFactory) {
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

    func record(_ journey: RequestJourney, status: HTTPResponseStatus) {
        for (stage, duration) in journey.stageDurations {
            stageTimers[stage.position].recordNanoseconds(duration.nanoseconds)
        }
        requestTimer.recordNanoseconds(journey.total.nanoseconds)
        requestsByClass[min(max(Int(status.code) / 100, 1), 5) - 1].increment()
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
