import CoreMetrics

/// The edge's metrics by listener, cluster and upstream, from an injected factory.
public struct EdgeMetrics: Sendable {
    private let factory: any MetricsFactory

    public init(factory: any MetricsFactory) {
        self.factory = factory
    }

    /// Requests or connections a listener took.
    func accepted(listener: String) -> Counter {
        Counter(label: "switchboard_edge_accepted_total", dimensions: [("listener", listener)], factory: factory)
    }

    func active(listener: String) -> Meter {
        Meter(label: "switchboard_edge_active", dimensions: [("listener", listener)], factory: factory)
    }

    /// Requests of an HTTP route, by status class.
    func requests(listener: String, route: String, statusClass: String) -> Counter {
        Counter(
            label: "switchboard_edge_requests_total",
            dimensions: [("listener", listener), ("route", route), ("status_class", statusClass)],
            factory: factory
        )
    }

    func latency(listener: String, route: String) -> Timer {
        Timer(
            label: "switchboard_edge_request_seconds",
            dimensions: [("listener", listener), ("route", route)],
            factory: factory
        )
    }

    func cluster(_ name: String, upstreams: [String]) -> ClusterMetrics {
        ClusterMetrics(cluster: name, factory: factory)
    }

    /// Per upstream of one cluster.
    struct ClusterMetrics: Sendable {
        let cluster: String
        let factory: any MetricsFactory

        private func dimensions(_ upstream: String) -> [(String, String)] {
            [("cluster", cluster), ("upstream", upstream)]
        }

        func requests(_ upstream: String) -> Counter {
            Counter(
                label: "switchboard_edge_upstream_requests_total",
                dimensions: dimensions(upstream),
                factory: factory
            )
        }

        func errors(_ upstream: String) -> Counter {
            Counter(label: "switchboard_edge_upstream_errors_total", dimensions: dimensions(upstream), factory: factory)
        }

        func retries(_ upstream: String) -> Counter {
            Counter(
                label: "switchboard_edge_upstream_retries_total",
                dimensions: dimensions(upstream),
                factory: factory
            )
        }

        func ejections(_ upstream: String) -> Counter {
            Counter(
                label: "switchboard_edge_upstream_ejections_total",
                dimensions: dimensions(upstream),
                factory: factory
            )
        }

        func latency(_ upstream: String) -> Timer {
            Timer(label: "switchboard_edge_upstream_seconds", dimensions: dimensions(upstream), factory: factory)
        }

        /// 1 while the active checks find the upstream healthy, else 0.
        func healthy(_ upstream: String) -> Gauge {
            Gauge(label: "switchboard_edge_upstream_healthy", dimensions: dimensions(upstream), factory: factory)
        }

        func active(_ upstream: String) -> Meter {
            Meter(label: "switchboard_edge_upstream_active", dimensions: dimensions(upstream), factory: factory)
        }
    }
}
