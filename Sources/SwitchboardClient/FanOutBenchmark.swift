import AsyncHTTPClient
import Foundation
import NIOCore
import Synchronization

/// Fan-out measured the way the referee `benchmarks/referee/fanout.py` does it: N subscribers on one fresh topic, one
/// publisher at a fixed rate, each payload carrying its sequence number and send time
/// (`SEQUENCE.NANOSECONDS.xxx…`), and an exact per-subscriber account of what was lost, duplicated or
/// reordered. Subscribers and publisher run in this process, so the clock is shared. Each subscriber has a
/// connection of its own, whatever the transport; the publisher publishes over HTTP.
public struct FanOutBenchmark: Sendable {
    public enum Transport: String, Sendable, CaseIterable {
        case ws
        case sse
        /// `switchboard.v1.Topics/Subscribe` streams, at `Options.grpcAddress`.
        case grpc
    }

    public struct Options: Sendable {
        public var subscribers = 100
        public var rate = 100
        public var seconds = 5
        public var transport = Transport.ws
        /// The gRPC listener, `HOST:PORT`, for the gRPC transport.
        public var grpcAddress = "127.0.0.1:50051"
        public var payloadBytes = 64
        /// Time after the last publish for stragglers.
        public var drain: Duration = .seconds(2)

        public init() {}
    }

    public struct Report: Sendable, CustomStringConvertible {
        public var subscribers: Int
        public var published: Int
        public var expected: Int
        public var received: Int
        public var missing: Int
        public var duplicated: Int
        public var outOfOrder: Int
        public var deliveriesPerSecond: Double
        /// Publish-to-delivery latency percentiles in milliseconds: p50, p90, p99, max.
        public var latencyMilliseconds: (p50: Double, p90: Double, p99: Double, max: Double)

        public var description: String {
            let latency = latencyMilliseconds
            return """
                subscribers \(subscribers), published \(published), deliveries \(received) of \(expected) \
                (\(String(format: "%.3f", expected == 0 ? 0 : Double(received) * 100 / Double(expected))) %), \
                \(Int(deliveriesPerSecond)) deliveries/s
                latency ms: p50 \(fmt(latency.p50))  p90 \(fmt(latency.p90))  p99 \(fmt(latency.p99))  max \(fmt(latency.max))
                integrity : missing \(missing)  duplicated \(duplicated)  out-of-order \(outOfOrder)
                """
        }

        private func fmt(_ value: Double) -> String { String(format: "%.2f", value) }
    }

    public let baseURL: String
    public let options: Options

    public init(baseURL: String, options: Options) {
        self.baseURL = baseURL
        self.options = options
    }

    public func run() async throws -> Report {
        let topic = "bench-\(UUID().uuidString.prefix(8).lowercased())"
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(
            idleTimeout: .seconds(60),
            concurrentHTTP1ConnectionsPerHostSoftLimit: options.subscribers + 8
        )
        let http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
        do {
            let report = try await measure(SwitchboardClient(baseURL: baseURL, httpClient: http), topic: topic)
            try await http.shutdown()
            return report
        } catch {
            try? await http.shutdown()
            throw error
        }
    }

    private func measure(_ client: SwitchboardClient, topic: String) async throws -> Report {
        let accounts = (0..<options.subscribers).map { _ in SubscriberAccount() }
        return try await withThrowingTaskGroup(of: Void.self) { group in
            for account in accounts {
                group.addTask { try await subscribe(client, topic: topic, into: account) }
            }
            try await waitForSubscribers(client)
            let firstPublish = Int64(DispatchTime.now().uptimeNanoseconds)
            let published = try await publish(client, topic: topic)
            try await Task.sleep(for: options.drain)
            group.cancelAll()
            let lastDelivery = accounts.map(\.lastDelivery).max() ?? firstPublish
            return report(accounts, published: published, elapsed: .nanoseconds(max(1, lastDelivery - firstPublish)))
        }
    }

    /// Waits until the server counts every subscription (`switchboard_subscribers`), up to 60 s, and a
    /// second more: a message published before a subscription reaches the server is not delivered to it.
    private func waitForSubscribers(_ client: SwitchboardClient) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            let metrics = try await client.metricsText()
            let line = metrics.split(separator: "\n").first { $0.hasPrefix("switchboard_subscribers ") }
            if let count = line?.split(separator: " ").last.flatMap({ Double($0) }), Int(count) >= options.subscribers {
                break
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        try await Task.sleep(for: .seconds(1))
    }

    private func subscribe(_ client: SwitchboardClient, topic: String, into account: SubscriberAccount) async throws {
        switch options.transport {
        case .ws:
            for try await message in try await client.webSocketMessages(topic: topic, after: nil) {
                account.record(payload: message.data ?? "")
            }
        case .sse:
            for try await event in try await client.events(topic: topic, after: nil) where event.event == nil {
                account.record(payload: event.data)
            }
        case .grpc:
            try await GRPCTopicsClient.with(address: options.grpcAddress) { grpc in
                for try await message in grpc.messages(topic: topic, after: nil) {
                    account.record(payload: String(decoding: message.data, as: UTF8.self))
                }
            }
        }
    }

    /// Publishes `rate × seconds` messages on schedule; returns how many were acknowledged.
    private func publish(_ client: SwitchboardClient, topic: String) async throws -> Int {
        let total = options.rate * options.seconds
        let interval = Duration.nanoseconds(1_000_000_000 / max(1, options.rate))
        let start = ContinuousClock.now
        var acknowledged = 0
        for sequence in 0..<total {
            let due = start + interval * sequence
            if due > .now {
                try await Task.sleep(until: due, clock: .continuous)
            }
            let head = "\(sequence).\(DispatchTime.now().uptimeNanoseconds)."
            let payload = head + String(repeating: "x", count: max(0, options.payloadBytes - head.utf8.count))
            _ = try await client.publish(topic: topic, body: ByteBuffer(string: payload))
            acknowledged += 1
        }
        return acknowledged
    }

    private func report(_ accounts: [SubscriberAccount], published: Int, elapsed: Duration) -> Report {
        var latencies: [Int64] = []
        var received = 0
        var missing = 0
        var duplicated = 0
        var outOfOrder = 0
        for account in accounts {
            let tally = account.tally(published: published)
            latencies += tally.latencies
            received += tally.received
            missing += tally.missing
            duplicated += tally.duplicated
            outOfOrder += tally.outOfOrder
        }
        latencies.sort()
        func percentile(_ fraction: Double) -> Double {
            guard !latencies.isEmpty else { return 0 }
            let index = min(latencies.count - 1, Int(Double(latencies.count) * fraction))
            return Double(latencies[index]) / 1_000_000
        }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return Report(
            subscribers: accounts.count,
            published: published,
            expected: published * accounts.count,
            received: received,
            missing: missing,
            duplicated: duplicated,
            outOfOrder: outOfOrder,
            deliveriesPerSecond: seconds > 0 ? Double(received) / seconds : 0,
            latencyMilliseconds: (percentile(0.5), percentile(0.9), percentile(0.99), percentile(1))
        )
    }
}

/// What one subscriber received, kept exactly.
final class SubscriberAccount: Sendable {
    private struct State {
        var seen = Set<Int>()
        var highest = -1
        var duplicated = 0
        var outOfOrder = 0
        var latencies: [Int64] = []
        var lastAt: Int64 = 0
    }

    private let state = Mutex(State())

    /// When the last message arrived, in `DispatchTime` nanoseconds.
    var lastDelivery: Int64 { state.withLock { $0.lastAt } }

    func record(payload: String) {
        let now = Int64(DispatchTime.now().uptimeNanoseconds)
        let parts = payload.split(separator: ".", maxSplits: 2)
        guard parts.count >= 2, let sequence = Int(parts[0]), let sent = Int64(parts[1]) else { return }
        state.withLock { state in
            guard state.seen.insert(sequence).inserted else {
                state.duplicated += 1
                return
            }
            if sequence < state.highest {
                state.outOfOrder += 1
            }
            state.highest = max(state.highest, sequence)
            state.latencies.append(now - sent)
            state.lastAt = max(state.lastAt, now)
        }
    }

    func tally(published: Int) -> (received: Int, missing: Int, duplicated: Int, outOfOrder: Int, latencies: [Int64]) {
        state.withLock { state in
            (
                state.seen.count, published - state.seen.filter { $0 < published }.count, state.duplicated,
                state.outOfOrder, state.latencies
            )
        }
    }
}
