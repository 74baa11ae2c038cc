import NIOCore
import NIOPosix
import Synchronization

/// One upstream of a cluster and what the edge knows of it now: requests in flight, the verdict of the
/// active checks, and passive ejection after consecutive failures.
final class UpstreamTarget: Sendable {
    let address: String
    let host: String
    let port: Int
    let weight: Int
    let metrics: UpstreamMetrics
    /// The socket address when the host is an IP literal, so that connecting resolves nothing.
    let socketAddress: SocketAddress?

    private struct State {
        var inFlight = 0
        var healthy = true
        var checkSuccesses = 0
        var checkFailures = 0
        var consecutiveFailures = 0
        var ejectedUntil: NIODeadline?
    }

    private let state = Mutex(State())

    init(address: String, host: String, port: Int, weight: Int, metrics: UpstreamMetrics) {
        self.address = address
        self.host = host
        self.port = port
        self.weight = weight
        self.metrics = metrics
        self.socketAddress = try? SocketAddress(ipAddress: host, port: port)
    }

    /// Requests (or connections) being served by this upstream.
    var inFlight: Int { state.withLock { $0.inFlight } }

    /// Healthy by the active checks and not ejected by the passive ones.
    var isAvailable: Bool {
        state.withLock { state in
            guard state.healthy else { return false }
            guard let until = state.ejectedUntil else { return true }
            if until <= .now() {
                state.ejectedUntil = nil
                state.consecutiveFailures = 0
                return true
            }
            return false
        }
    }

    var isHealthy: Bool { state.withLock { $0.healthy } }

    /// Ejected by the passive checks now.
    var isEjected: Bool { state.withLock { state in state.ejectedUntil.map { $0 > .now() } ?? false } }

    /// A request or connection starts: counted, and in flight until `end`.
    func begin() {
        metrics.requests.increment()
        metrics.active.increment()
        state.withLock { $0.inFlight += 1 }
    }

    func end() {
        metrics.active.decrement()
        state.withLock { $0.inFlight -= 1 }
    }

    func recordSuccess() { state.withLock { $0.consecutiveFailures = 0 } }

    /// Counts a failed request; returns `true` when it ejects the upstream for `duration`.
    func recordFailure(ejectAfter failures: Int, for duration: TimeAmount) -> Bool {
        state.withLock { state in
            state.consecutiveFailures += 1
            guard state.consecutiveFailures >= failures, state.ejectedUntil == nil else { return false }
            state.ejectedUntil = .now() + duration
            return true
        }
    }

    /// Counts an active check; returns the new verdict when it changed.
    func recordCheck(passed: Bool, healthyAfter: Int, unhealthyAfter: Int) -> Bool? {
        state.withLock { state in
            if passed {
                state.checkSuccesses += 1
                state.checkFailures = 0
                if !state.healthy && state.checkSuccesses >= healthyAfter {
                    state.healthy = true
                    state.ejectedUntil = nil
                    state.consecutiveFailures = 0
                    return true
                }
            } else {
                state.checkFailures += 1
                state.checkSuccesses = 0
                if state.healthy && state.checkFailures >= unhealthyAfter {
                    state.healthy = false
                    return false
                }
            }
            return nil
        }
    }
}

extension ClientBootstrap {
    /// Connects to `upstream`: straight to its socket address when it has one, else by name.
    func connectingTo(_ upstream: UpstreamTarget) -> EventLoopFuture<any Channel> {
        if let address = upstream.socketAddress {
            return connect(to: address)
        }
        return connect(host: upstream.host, port: upstream.port)
    }
}
