import CoreMetrics
import Testing

@testable import SwitchboardEdge

@Suite struct LoadBalancerTests {
    private func upstreams(_ count: Int, weights: [Int]? = nil) -> [UpstreamTarget] {
        (0..<count).map { index in
            UpstreamTarget(
                address: "10.0.0.\(index):80",
                host: "10.0.0.\(index)",
                port: 80,
                weight: weights?[index] ?? 1,
                metrics: EdgeMetrics(factory: NOOPMetricsHandler.instance).upstream(
                    "10.0.0.\(index):80",
                    cluster: "test"
                )
            )
        }
    }

    private func shares(_ balancer: any LoadBalancer, _ upstreams: [UpstreamTarget], picks: Int) -> [String: Int] {
        var counts: [String: Int] = [:]
        for index in 0..<picks {
            counts[balancer.pick(from: upstreams, key: "key\(index)").address, default: 0] += 1
        }
        return counts
    }

    @Test func roundRobinTakesEachInTurn() {
        let targets = upstreams(3)
        let balancer = RoundRobinBalancer()
        let order = (0..<6).map { _ in balancer.pick(from: targets, key: nil).address }
        #expect(order == targets.map(\.address) + targets.map(\.address))
    }

    @Test func weightedSharesFollowWeightsAndInterleave() {
        let targets = upstreams(3, weights: [5, 1, 1])
        let balancer = WeightedRoundRobinBalancer()
        let order = (0..<7).map { _ in balancer.pick(from: targets, key: nil).address }
        #expect(order.filter { $0 == targets[0].address }.count == 5)
        // Smooth: the heavy upstream never takes more than three in a row within a cycle of seven.
        #expect(order != Array(repeating: targets[0].address, count: 5) + [targets[1].address, targets[2].address])
        let counts = shares(balancer, targets, picks: 7000)
        #expect(counts[targets[0].address] == 5000 && counts[targets[1].address] == 1000)
    }

    @Test func leastConnectionsAvoidsTheBusyUpstream() {
        let targets = upstreams(3)
        targets[0].begin()
        targets[0].begin()
        targets[2].begin()
        #expect(LeastConnectionsBalancer().pick(from: targets, key: nil) === targets[1])
    }

    @Test func powerOfTwoChoicesPrefersTheLessBusyAndSpreadsOtherwise() {
        let targets = upstreams(2)
        for _ in 0..<5 { targets[0].begin() }
        let balancer = PowerOfTwoChoicesBalancer()
        #expect((0..<100).allSatisfy { _ in balancer.pick(from: targets, key: nil) === targets[1] })
        let idle = upstreams(4)
        let counts = shares(balancer, idle, picks: 8000)
        #expect(counts.values.allSatisfy { (1600...2400).contains($0) })
    }

    @Test func consistentHashKeepsKeysAndMovesFewWhenAnUpstreamLeaves() {
        let targets = upstreams(5)
        let balancer = ConsistentHashBalancer(upstreams: targets)
        let keys = (0..<5000).map { "user-\($0)" }
        let before = keys.map { balancer.pick(from: targets, key: $0).address }
        #expect(keys.map { balancer.pick(from: targets, key: $0).address } == before)
        let counts = Dictionary(grouping: before, by: { $0 }).mapValues(\.count)
        #expect(counts.values.allSatisfy { (600...1400).contains($0) })
        let leaving = targets[2].address
        let remaining = targets.filter { $0.address != leaving }
        let after = keys.map { balancer.pick(from: remaining, key: $0).address }
        let moved = zip(before, after).filter { $0 != $1 }
        // Only the keys of the upstream that left move, and they spread over the others.
        #expect(moved.allSatisfy { $0.0 == leaving })
        #expect(moved.count == counts[leaving])
        #expect(Set(moved.map(\.1)).count == 4)
    }

    @Test func ejectionAfterConsecutiveFailuresAndReturnAfterItsTime() async throws {
        let target = upstreams(1)[0]
        #expect(!target.recordFailure(ejectAfter: 2, for: .milliseconds(100)))
        #expect(target.recordFailure(ejectAfter: 2, for: .milliseconds(100)))
        #expect(!target.isAvailable)
        try await Task.sleep(for: .milliseconds(150))
        #expect(target.isAvailable)
    }

    @Test func activeChecksNeedTheirThresholdsInARow() {
        let target = upstreams(1)[0]
        #expect(target.recordCheck(passed: false, healthyAfter: 2, unhealthyAfter: 2) == nil)
        #expect(target.recordCheck(passed: false, healthyAfter: 2, unhealthyAfter: 2) == false)
        #expect(!target.isAvailable)
        #expect(target.recordCheck(passed: true, healthyAfter: 2, unhealthyAfter: 2) == nil)
        #expect(target.recordCheck(passed: true, healthyAfter: 2, unhealthyAfter: 2) == true)
        #expect(target.isAvailable)
    }

    @Test func retryBudgetAllowsAShareOfRequests() {
        let budget = RetryBudget(share: 0.1)
        for _ in 0..<100 { budget.recordRequest() }
        let granted = (0..<50).filter { _ in budget.takeRetry() }.count
        #expect(granted == 10)
    }
}
