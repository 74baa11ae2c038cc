import CoreMetrics

/// Makes the edge's metrics from an injected factory. Each listener, route and upstream gets its own set
/// once, when the configuration is loaded, so that a request only touches metrics it already holds.
public struct EdgeMetrics: Sendable {
    private let factory: any MetricsFactory

    public init(factory: any MetricsFactory) {
        self.factory = factory
    }

    func listener(_ name: String) -> ListenerMetrics {
        let dimensions = [("listener", name)]
        return ListenerMetrics(
            accepted: Counter(label: "switchboard_edge_accepted_total", dimensions: dimensions, factory: factory),
            active: Meter(label: "switchboard_edge_active", dimensions: dimensions, factory: factory)
        )
    }

    func route(_ name: String, listener: String) -> RouteMetrics {
        let dimensions = [("listener", listener), ("route", name)]
        return RouteMetrics(
            requestsByClass: (1...5).map { leading in
                Counter(
                    label: "switchboard_edge_requests_total",
                    dimensions: dimensions + [("status_class", "\(leading)xx")],
                    factory: factory
                )
            },
            latency: Timer(label: "switchboard_edge_request_seconds", dimensions: dimensions, factory: factory)
        )
    }

    func upstream(_ address: String, cluster: String) -> UpstreamMetrics {
        let dimensions = [("cluster", cluster), ("upstream", address)]
        func counter(_ label: String) -> Counter { Counter(label: label, dimensions: dimensions, factory: factory) }
        return UpstreamMetrics(
            requests: counter("switchboard_edge_upstream_requests_total"),
            errors: counter("switchboard_edge_upstream_errors_total"),
            retries: counter("switchboard_edge_upstream_retries_total"),
            ejections: counter("switchboard_edge_upstream_ejections_total"),
            latency: Timer(label: "switchboard_edge_upstream_seconds", dimensions: dimensions, factory: factory),
            healthy: Gauge(label: "switchboard_edge_upstream_healthy", dimensions: dimensions, factory: factory),
            active: Meter(label: "switchboard_edge_upstream_active", dimensions: dimensions, factory: factory)
        )
    }
}

/// Connections a `tcp` or `forward` listener took, and those open now.
struct ListenerMetrics: Sendable {
    let accepted: Counter
    let active: Meter
}

/// Requests of one route of an `http` listener by status class, and their latency.
struct RouteMetrics: Sendable {
    let requestsByClass: [Counter]
    let latency: Timer

    func record(status: Int, nanoseconds: Int64) {
        requestsByClass[min(max(status / 100, 1), 5) - 1].increment()
        latency.recordNanoseconds(nanoseconds)
    }
}

/// One upstream's requests (or connections), errors, retries, ejections, latency, health (1 while the
/// active checks find it healthy) and what it serves now.
struct UpstreamMetrics: Sendable {
    let requests: Counter
    let errors: Counter
    let retries: Counter
    let ejections: Counter
    let latency: Timer
    let healthy: Gauge
    let active: Meter
}
