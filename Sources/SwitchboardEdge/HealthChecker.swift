import AsyncHTTPClient
import Logging
import NIOCore
import NIOPosix

/// Active health checks: every interval each upstream of a cluster with a `healthCheck` is probed
/// (`GET path` answered 2xx or 3xx for HTTP clusters, a TCP connect for the others); the configured
/// number of passes or failures in a row changes its verdict.
struct HealthChecker: Sendable {
    enum Probe: Sendable {
        case http(HTTPClient)
        case tcpConnect
    }

    let cluster: UpstreamCluster
    let probe: Probe
    let eventLoopGroup: any EventLoopGroup
    let logger: Logger

    /// Probes until the task is cancelled.
    func run() async {
        guard let rules = cluster.healthCheck else { return }
        for upstream in cluster.upstreams {
            upstream.metrics.healthy.record(1)
        }
        while !Task.isCancelled {
            await withTaskGroup(of: Void.self) { group in
                for upstream in cluster.upstreams {
                    group.addTask { await check(upstream, rules: rules) }
                }
            }
            try? await Task.sleep(nanoseconds: UInt64(rules.interval.nanoseconds))
        }
    }

    private func check(_ upstream: UpstreamTarget, rules: UpstreamCluster.HealthCheckRules) async {
        let passed = await passes(upstream, rules: rules)
        guard
            let healthy = upstream.recordCheck(
                passed: passed,
                healthyAfter: rules.healthyAfter,
                unhealthyAfter: rules.unhealthyAfter
            )
        else { return }
        upstream.metrics.healthy.record(healthy ? 1 : 0)
        logger.notice(
            healthy ? "Upstream healthy again" : "Upstream unhealthy",
            metadata: ["cluster": "\(cluster.name)", "upstream": "\(upstream.address)"]
        )
    }

    private func passes(_ upstream: UpstreamTarget, rules: UpstreamCluster.HealthCheckRules) async -> Bool {
        switch probe {
        case .http(let client):
            let request = HTTPClientRequest(url: "\(cluster.scheme)://\(upstream.address)\(rules.path)")
            guard let response = try? await client.execute(request, timeout: rules.timeout) else { return false }
            _ = try? await response.body.collect(upTo: 64 * 1024)
            return (200..<400).contains(response.status.code)
        case .tcpConnect:
            let channel = try? await ClientBootstrap(group: eventLoopGroup)
                .connectTimeout(rules.timeout)
                .connectingTo(upstream).get()
            try? await channel?.close()
            return channel != nil
        }
    }
}
