import NIOCore
import SwitchboardEngine
import Synchronization

/// A cluster as the edge runs it: its upstreams with their live state, the balancer, and the rules for
/// health, ejection, timeouts and retries, all resolved from the configuration.
final class UpstreamCluster: Sendable {
    let name: String
    let upstreams: [UpstreamTarget]
    let algorithm: BalancingAlgorithm
    let balancer: any LoadBalancer
    let hashKey: EdgeConfiguration.HashKey?
    let healthCheck: HealthCheckRules?
    let ejectAfterFailures: Int
    let ejectFor: TimeAmount
    let connectTimeout: TimeAmount
    let firstByteTimeout: TimeAmount
    let idleTimeout: TimeAmount
    let retryAttempts: Int
    let retryBudget: RetryBudget
    let maxConnectionsPerUpstream: Int
    let tls: EdgeConfiguration.UpstreamTLS?

    struct HealthCheckRules: Sendable {
        var path: String
        var interval: TimeAmount
        var timeout: TimeAmount
        var healthyAfter: Int
        var unhealthyAfter: Int
    }

    /// - Precondition: `configuration` has no problems.
    init(_ configuration: EdgeConfiguration.Cluster, metrics: EdgeMetrics) {
        func duration(_ text: String?, default value: TimeAmount) -> TimeAmount {
            text.flatMap(SettingValue.duration) ?? value
        }
        name = configuration.name
        upstreams = configuration.upstreams.map { upstream in
            let (host, port) = SettingValue.hostAndPort(upstream.address)!
            return UpstreamTarget(
                address: upstream.address,
                host: host,
                port: port,
                weight: upstream.weight ?? 1,
                metrics: metrics.upstream(upstream.address, cluster: configuration.name)
            )
        }
        algorithm = configuration.balance.flatMap(BalancingAlgorithm.init(rawValue:)) ?? .roundRobin
        balancer = algorithm.makeBalancer(for: upstreams)
        hashKey = configuration.hashOn
        healthCheck = configuration.healthCheck.map { check in
            HealthCheckRules(
                path: check.path ?? "/healthz",
                interval: duration(check.interval, default: .seconds(2)),
                timeout: duration(check.timeout, default: .seconds(1)),
                healthyAfter: check.healthy ?? 2,
                unhealthyAfter: check.unhealthy ?? 2
            )
        }
        ejectAfterFailures = configuration.eject?.failures ?? 3
        ejectFor = duration(configuration.eject?.ejectFor, default: .seconds(10))
        connectTimeout = duration(configuration.timeouts?.connect, default: .seconds(2))
        firstByteTimeout = duration(configuration.timeouts?.firstByte, default: .seconds(30))
        idleTimeout = duration(configuration.timeouts?.idle, default: .seconds(300))
        retryAttempts = configuration.retries?.attempts ?? 2
        retryBudget = RetryBudget(share: configuration.retries?.budget ?? 0.2)
        maxConnectionsPerUpstream = configuration.maxConnectionsPerUpstream ?? 64
        tls = configuration.tls
    }

    /// `http` or `https`: how requests reach the upstreams.
    var scheme: String { tls == nil ? "http" : "https" }

    /// An available upstream for a request with `key`, none of `excluded` (those already tried).
    func pick(key: String?, excluding excluded: [UpstreamTarget] = []) -> UpstreamTarget? {
        let candidates = upstreams.filter { upstream in
            upstream.isAvailable && !excluded.contains { $0 === upstream }
        }
        guard !candidates.isEmpty else { return nil }
        return balancer.pick(from: candidates, key: key)
    }

    /// Counts a failed request or connection on `upstream`, ejecting it after too many in a row.
    func recordFailure(_ upstream: UpstreamTarget) {
        upstream.metrics.errors.increment()
        if upstream.recordFailure(ejectAfter: ejectAfterFailures, for: ejectFor) {
            upstream.metrics.ejections.increment()
        }
    }
}

/// Retries allowed as a share of recent requests, so that retries cannot multiply the load on a
/// cluster that is failing: over a sliding window of 10 s, at most `share` of the requests (and at
/// least 3 in any window) may be retries.
final class RetryBudget: Sendable {
    private struct Window {
        var started = NIODeadline.now()
        var requests = 0
        var retries = 0
    }

    private let share: Double
    private let window = Mutex(Window())
    private static let length = TimeAmount.seconds(10)

    init(share: Double) {
        self.share = share
    }

    func recordRequest() {
        window.withLock { window in
            rollIfOld(&window)
            window.requests += 1
        }
    }

    /// Takes one retry from the budget; `false` when it is spent.
    func takeRetry() -> Bool {
        window.withLock { window in
            rollIfOld(&window)
            guard Double(window.retries) < max(3, share * Double(window.requests)) else { return false }
            window.retries += 1
            return true
        }
    }

    private func rollIfOld(_ window: inout Window) {
        if NIODeadline.now() - window.started > Self.length {
            window = Window()
        }
    }
}
