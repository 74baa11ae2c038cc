import Foundation
import Logging
import ServiceLifecycle
import SwitchboardBroker
import SwitchboardStore

/// The job queue: submissions, claims under leases, heartbeats, completions, retries with backoff and the
/// dead-letter state. Every state change is committed together with its event on topic `jobs.{id}` and
/// then fanned out by the broker, so polls, long polls, SSE and WebSocket all see jobs the same way.
///
/// As a `Service` it returns jobs whose lease expired to their queue, until graceful shutdown.
public final class Jobs: Service, Sendable {
    public struct Configuration: Sendable {
        /// The lease a claim gets unless it asks for another.
        public var defaultLease: Duration = .seconds(30)
        /// How often expired leases are looked for.
        public var leaseSweepInterval: Duration = .seconds(1)
        /// How long a finished job (and its events) is kept.
        public var retention: Duration = .seconds(7 * 24 * 3600)
        /// How often finished jobs past their retention are deleted.
        public var retentionInterval: Duration = .seconds(60)
        /// The delay before the first retry; each later one doubles it, up to `maxBackoff`, with jitter.
        public var baseBackoff: Duration = .seconds(1)
        public var maxBackoff: Duration = .seconds(300)

        public init() {}
    }

    /// The topic that carries a job's state changes (reserved: clients read it, only the server writes).
    public static func topic(of id: String) -> String { TopicName.jobsPrefix + id }

    public let configuration: Configuration
    private let store: any JobStore
    private let broker: Broker
    private let signals = QueueSignals()
    private let clock: any WallClock
    private let logger: Logger

    /// - Parameter clock: what leases, backoffs and retention are measured by.
    public init(
        store: any JobStore,
        broker: Broker,
        configuration: Configuration = Configuration(),
        clock: any WallClock = SystemWallClock(),
        logger: Logger
    ) {
        self.store = store
        self.broker = broker
        self.configuration = configuration
        self.clock = clock
        self.logger = logger
    }

    /// Adds a job; `receipt` is the idempotency record to commit with it.
    public func submit(_ job: NewJob, receipt: IdempotencyReceipt<JobChange>? = nil) async throws -> JobChange {
        let change = try await store.submit(job, now: clock.now(), event: Self.event, receipt: receipt)
        announce([change])
        return change
    }

    public func job(id: String) async throws -> Job? {
        try await store.job(id: id)
    }

    /// How many jobs each queue holds in each state.
    public func queueCounts() async throws -> [String: [JobState: Int]] {
        try await store.queueCounts()
    }

    public func jobs(queue: String?, state: JobState?, limit: Int) async throws -> [Job] {
        try await store.jobs(queue: queue, state: state, limit: limit)
    }

    /// Leases the next due job of `queue`, waiting up to `wait` for one; `nil` when none came.
    public func claim(queue: String, lease: Duration? = nil, waitingUpTo wait: Duration = .zero) async throws -> Job? {
        try await claim(queue: queue, limit: 1, lease: lease, waitingUpTo: wait).first
    }

    /// Leases up to `limit` due jobs of `queue` in one transaction, waiting up to `wait` for the first.
    public func claim(
        queue: String,
        limit: Int,
        lease: Duration? = nil,
        waitingUpTo wait: Duration = .zero
    ) async throws -> [Job] {
        let deadline = ContinuousClock.now + wait
        let lease = (lease ?? configuration.defaultLease).milliseconds
        while true {
            let claimed = try await store.claim(
                queue: queue,
                limit: limit,
                leaseMilliseconds: lease,
                now: clock.now(),
                event: Self.event
            )
            if !claimed.isEmpty {
                announce(claimed)
                return claimed.map(\.job)
            }
            let left = deadline - ContinuousClock.now
            guard left > .zero, !Task.isCancelled else { return [] }
            // A submission wakes the wait; a scheduled job or a retry becomes due on its own.
            var nap = min(left, .seconds(1))
            if let due = try await store.nextDue(queue: queue) {
                nap = min(nap, .milliseconds(max(0, due - clock.now())))
            }
            await signals.wait(queue, upTo: nap)
        }
    }

    public func heartbeat(id: String, token: String, lease: Duration? = nil) async throws -> Job {
        let lease = (lease ?? configuration.defaultLease).milliseconds
        return try await store.heartbeat(id: id, token: token, leaseMilliseconds: lease, now: clock.now())
    }

    public func complete(id: String, token: String, result: JSONValue) async throws -> JobChange {
        let change = try await store.complete(
            id: id,
            token: token,
            result: result.data,
            now: clock.now(),
            event: Self.event
        )
        announce([change])
        return change
    }

    /// Records a failed attempt; with `retry`, it is retried after a backoff while attempts remain.
    public func fail(id: String, token: String, error: String, retry: Bool = true) async throws -> JobChange {
        let policy = retry ? backoff : Self.noRetry
        let change = try await store.fail(
            id: id,
            token: token,
            error: error,
            retry: policy,
            now: clock.now(),
            event: Self.event
        )
        announce([change])
        return change
    }

    public func cancel(id: String) async throws -> JobChange {
        let change = try await store.cancel(id: id, now: clock.now(), event: Self.event)
        announce([change])
        return change
    }

    public func requeue(id: String) async throws -> JobChange {
        let change = try await store.requeue(id: id, now: clock.now(), event: Self.event)
        announce([change])
        return change
    }

    /// The job once its version passes `version` (a state change), or as it is when `timeout` passes.
    public func job(id: String, changedAfter version: Int64, waitingUpTo timeout: Duration) async throws -> Job? {
        _ = try await broker.read(topic: Self.topic(of: id), after: version, limit: 1, waitingUpTo: timeout)
        return try await store.job(id: id)
    }

    /// The job once it reaches a final state, or as it is when `timeout` passes.
    public func job(id: String, finishedWithin timeout: Duration) async throws -> Job? {
        let deadline = ContinuousClock.now + timeout
        while let job = try await store.job(id: id) {
            let left = deadline - ContinuousClock.now
            if job.state.isFinal || left <= .zero { return job }
            _ = try await broker.read(topic: Self.topic(of: job.id), after: job.version, limit: 1, waitingUpTo: left)
        }
        return nil
    }

    /// Returns jobs whose lease expired to their queue (or to `dead`); returns how many.
    @discardableResult
    public func expireLeases() async throws -> Int {
        let changes = try await store.expireLeases(now: clock.now(), event: Self.event)
        for change in changes {
            logger.warning(
                "Lease expired",
                metadata: ["job": "\(change.job.id)", "queue": "\(change.job.queue)", "state": "\(change.job.state)"]
            )
        }
        announce(changes)
        return changes.count
    }

    /// Deletes finished jobs older than the retention, with their events; returns how many.
    @discardableResult
    public func deleteExpiredJobs() async throws -> Int {
        let before = clock.now() - configuration.retention.milliseconds
        var deleted = 0
        while true {
            let batch = try await store.deleteFinishedJobs(before: before, limit: 500)
            deleted += batch
            if batch < 500 { return deleted }
        }
    }

    /// Sweeps expired leases every `leaseSweepInterval` and deletes old finished jobs every
    /// `retentionInterval`, until graceful shutdown.
    public func run() async throws {
        var lastRetention = ContinuousClock.now
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                try await expireLeases()
                if ContinuousClock.now - lastRetention >= configuration.retentionInterval {
                    lastRetention = ContinuousClock.now
                    let deleted = try await deleteExpiredJobs()
                    if deleted > 0 { logger.info("Finished jobs deleted", metadata: ["count": "\(deleted)"]) }
                }
            } catch {
                logger.error("Job sweep failed", metadata: ["error": "\(error)"])
            }
            let interval = configuration.leaseSweepInterval
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }

    /// Wakes up to `count` workers of this node waiting on `queue`, after jobs became due there on
    /// another node sharing the store.
    public func remoteQueued(queue: String, count: Int) {
        signals.notify(queue, count: count)
    }

    /// Fans the events out and wakes workers of queues that gained a due job.
    private func announce(_ changes: [JobChange]) {
        broker.announce(changes.compactMap(\.event))
        let now = clock.now()
        let due = changes.filter { $0.job.state == .queued && $0.job.runAt <= now }
        for (queue, jobs) in Dictionary(grouping: due, by: \.job.queue) {
            signals.notify(queue, count: jobs.count)
        }
    }

    /// Exponential backoff with equal jitter: half the doubled delay, plus a random part of the other half.
    private var backoff: RetryPolicy {
        let base = configuration.baseBackoff.milliseconds
        let cap = configuration.maxBackoff.milliseconds
        return { attempts in
            let exponential = min(cap, base << min(Int64(attempts - 1), 30))
            return exponential / 2 + Int64.random(in: 0...max(0, exponential / 2))
        }
    }

    private static let noRetry: RetryPolicy = { _ in nil }

    private static let event: JobEventRenderer = { job in
        NewMessage(topic: topic(of: job.id), contentType: "application/json", body: JobJSON.encode(job))
    }
}
