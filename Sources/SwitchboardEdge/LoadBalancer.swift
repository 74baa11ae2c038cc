import Synchronization

/// The ways a cluster shares its requests among its upstreams.
public enum BalancingAlgorithm: String, Sendable, CaseIterable {
    case roundRobin = "round-robin"
    case weighted
    case leastConnections = "least-connections"
    case powerOfTwo = "power-of-two"
    case hash

    func makeBalancer(for upstreams: [UpstreamTarget]) -> any LoadBalancer {
        switch self {
        case .roundRobin: RoundRobinBalancer()
        case .weighted: WeightedRoundRobinBalancer()
        case .leastConnections: LeastConnectionsBalancer()
        case .powerOfTwo: PowerOfTwoChoicesBalancer()
        case .hash: ConsistentHashBalancer(upstreams: upstreams)
        }
    }
}

/// Picks the upstream for one request among those that may take it now.
protocol LoadBalancer: Sendable {
    /// - Parameters:
    ///   - candidates: the available upstreams, in the cluster's order; never empty.
    ///   - key: the request's hash key, for balancers that use one.
    func pick(from candidates: [UpstreamTarget], key: String?) -> UpstreamTarget
}

/// Each upstream in turn.
final class RoundRobinBalancer: LoadBalancer {
    private let next = Mutex(0)

    func pick(from candidates: [UpstreamTarget], key: String?) -> UpstreamTarget {
        let turn = next.withLock { turn in
            defer { turn &+= 1 }
            return turn
        }
        return candidates[Int(UInt(bitPattern: turn) % UInt(candidates.count))]
    }
}

/// Each upstream in proportion to its weight, interleaved rather than in runs (NGINX's smooth weighted
/// round robin: every pick adds each weight to its upstream's score and takes the top score down by the sum).
final class WeightedRoundRobinBalancer: LoadBalancer {
    private let scores = Mutex([String: Int]())

    func pick(from candidates: [UpstreamTarget], key: String?) -> UpstreamTarget {
        scores.withLock { scores in
            let total = candidates.reduce(0) { $0 + $1.weight }
            var best = candidates[0]
            var bestScore = Int.min
            for upstream in candidates {
                let score = scores[upstream.address, default: 0] + upstream.weight
                scores[upstream.address] = score
                if score > bestScore {
                    best = upstream
                    bestScore = score
                }
            }
            scores[best.address, default: 0] -= total
            return best
        }
    }
}

/// The upstream with the fewest requests in flight; ties go round robin.
final class LeastConnectionsBalancer: LoadBalancer {
    private let tieBreaker = RoundRobinBalancer()

    func pick(from candidates: [UpstreamTarget], key: String?) -> UpstreamTarget {
        let loads = candidates.map(\.inFlight)
        let fewest = loads.min() ?? 0
        let least = zip(candidates, loads).filter { $0.1 == fewest }.map(\.0)
        return tieBreaker.pick(from: least, key: key)
    }
}

/// Two upstreams at random, and the less busy of them: close to least connections without every
/// balancer herding onto the same upstream.
struct PowerOfTwoChoicesBalancer: LoadBalancer {
    func pick(from candidates: [UpstreamTarget], key: String?) -> UpstreamTarget {
        guard candidates.count > 1 else { return candidates[0] }
        let first = Int.random(in: 0..<candidates.count)
        var second = Int.random(in: 0..<candidates.count - 1)
        if second >= first { second += 1 }
        return candidates[first].inFlight <= candidates[second].inFlight ? candidates[first] : candidates[second]
    }
}

/// A hash ring with many points per upstream: a key stays on its upstream, and when an upstream leaves,
/// only its own keys move (to the next point clockwise). A request without a key goes round robin.
struct ConsistentHashBalancer: LoadBalancer {
    static let pointsPerUpstream = 160

    /// Ring points sorted by hash, each naming an upstream by address.
    private let ring: [(hash: UInt64, address: String)]
    private let fallback = RoundRobinBalancer()

    init(upstreams: [UpstreamTarget]) {
        ring = upstreams.flatMap { upstream in
            (0..<Self.pointsPerUpstream).map { (StableHash.of("\(upstream.address)#\($0)"), upstream.address) }
        }.sorted { $0.hash < $1.hash }
    }

    func pick(from candidates: [UpstreamTarget], key: String?) -> UpstreamTarget {
        guard let key, !ring.isEmpty else { return fallback.pick(from: candidates, key: nil) }
        let byAddress = Dictionary(candidates.map { ($0.address, $0) }, uniquingKeysWith: { first, _ in first })
        let hash = StableHash.of(key)
        var low = 0
        var high = ring.count
        while low < high {
            let middle = (low + high) / 2
            if ring[middle].hash < hash { low = middle + 1 } else { high = middle }
        }
        for step in 0..<ring.count {
            if let upstream = byAddress[ring[(low + step) % ring.count].address] {
                return upstream
            }
        }
        return fallback.pick(from: candidates, key: nil)
    }
}

/// A 64-bit hash that is the same in every process (Swift's `Hasher` is seeded per process): FNV-1a,
/// then a SplitMix64 finaliser to spread nearby inputs over the ring.
enum StableHash {
    static func of(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        }
        hash = (hash ^ (hash >> 30)) &* 0xbf58_476d_1ce4_e5b9
        hash = (hash ^ (hash >> 27)) &* 0x94d0_49bb_1331_11eb
        return hash ^ (hash >> 31)
    }
}
