import CoreMetrics
import Foundation
import ServiceLifecycle
import SwitchboardStore

/// Topics as durable ordered logs with one delivery core: a publish is group-committed to the store,
/// then fanned out in memory to every live subscriber of its topic. Every delivery pattern (short and
/// long polls, SSE, WebSocket, consumer groups) is a thin adapter over `read`, `wait` and `subscribe`.
///
/// As a `Service` it applies retention on a schedule until graceful shutdown, then closes subscribers.
public final class Broker: Service, Sendable {
    public struct Configuration: Sendable {
        /// Live messages buffered per subscriber before it is moved back to reading the store.
        public var subscriberBuffer = 4096
        /// Messages read from the store at once while catching up.
        public var catchUpBatch = 512
        /// What every topic keeps, unless `topicRetention` names it.
        public var retention = RetentionPolicy()
        /// What particular topics keep instead.
        public var topicRetention: [String: RetentionPolicy] = [:]
        /// How often retention runs.
        public var retentionInterval: Duration = .seconds(30)

        public init() {}
    }

    public let configuration: Configuration
    private let store: any TopicStore
    private let committer: GroupCommitter
    private let subscribers: SubscriberRegistry

    /// - Parameter metrics: where `switchboard_subscribers` goes.
    public init(
        store: any TopicStore,
        configuration: Configuration = Configuration(),
        metrics: any MetricsFactory = NOOPMetricsHandler.instance
    ) {
        let subscribers = SubscriberRegistry(queueCapacity: configuration.subscriberBuffer, metrics: metrics)
        self.store = store
        self.configuration = configuration
        self.subscribers = subscribers
        self.committer = GroupCommitter(store: store) { messages in subscribers.fanOut(messages) }
    }

    /// Appends a message and returns it once it is durable.
    public func publish(_ message: NewMessage) async throws -> StoredMessage {
        try await committer.append(message)
    }

    /// Appends a message and calls `completion` once it is durable (or has failed), from the committing
    /// task: for callers such as event loops that should not start a task per publish.
    public func publish(
        _ message: NewMessage,
        completion: @escaping @Sendable (Result<StoredMessage, any Error>) -> Void
    ) {
        committer.append(message, completion: completion)
    }

    /// Fans out messages that another component appended to the store in a transaction of its own (job
    /// state changes, committed with the change they announce).
    public func announce(_ messages: [StoredMessage]) {
        guard !messages.isEmpty else { return }
        subscribers.fanOut(messages)
    }

    /// Wakes the subscribers and long polls of `topic` after another node sharing the store appended to
    /// it (`nil`: of every topic, when announcements may have been lost); they read what they miss from
    /// the store, so this node's fan-out never carries the other nodes' messages.
    public func remoteAppend(topic: String?) {
        subscribers.readStore(topic: topic)
    }

    /// Up to `limit` messages after `after`, at once.
    public func read(topic: String, after: Int64, limit: Int) async throws -> TopicSlice {
        try await store.read(topic: topic, after: Self.clamped(after), limit: limit)
    }

    /// Up to `limit` messages after `after`, waiting up to `timeout` for the first one to exist (a long
    /// poll). Waiting costs no thread: it is a suspended task on a subscriber queue.
    public func read(
        topic: String,
        after: Int64,
        limit: Int,
        waitingUpTo timeout: Duration
    ) async throws -> TopicSlice {
        let first = try await read(topic: topic, after: after, limit: limit)
        guard first.messages.isEmpty, timeout > .zero else { return first }
        let queue = subscribers.register(topic: topic)
        defer { subscribers.unregister(queue, from: topic) }
        // Registered before this read, so a message committed after it reaches the queue.
        let second = try await read(topic: topic, after: after, limit: limit)
        guard second.messages.isEmpty else { return second }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await Task.sleep(for: timeout) }
            group.addTask { _ = await queue.next() }
            await group.next()
            group.cancelAll()
        }
        return try await read(topic: topic, after: after, limit: limit)
    }

    /// The offsets a reader may name as `after` or commit: the one past the last is still a number, so
    /// no reader's position can overflow.
    public static let offsets: ClosedRange<Int64> = 0...(Int64.max - 1)

    private static func clamped(_ offset: Int64) -> Int64 {
        min(max(offset, offsets.lowerBound), offsets.upperBound)
    }

    /// A subscription that delivers every message after `after`; with `after == nil`, only messages
    /// published from now on. An `after` outside `offsets` is taken as its nearest end (callers refuse
    /// such values with a clear error first; this only keeps positions from overflowing).
    public func subscribe(topic: String, after: Int64?) async throws -> Subscription {
        let after = after.map(Self.clamped)
        let queue = subscribers.register(topic: topic)
        do {
            // Registered before the newest offset is read, so nothing published in between is missed.
            var start = after ?? 0
            if after == nil {
                start = try await latestOffset(topic: topic)
            }
            return Subscription(
                topic: topic,
                after: start,
                store: store,
                queue: queue,
                batchSize: configuration.catchUpBatch,
                unregister: { [subscribers] in subscribers.unregister(queue, from: topic) }
            )
        } catch {
            subscribers.unregister(queue, from: topic)
            throw error
        }
    }

    /// Up to `limit` topics in name order with their bounds and the retention that applies to each.
    public func topics(limit: Int) async throws -> [(summary: TopicSummary, retention: RetentionPolicy)] {
        try await store.topics(limit: limit).map { summary in
            (summary, configuration.topicRetention[summary.name] ?? configuration.retention)
        }
    }

    /// The offset of the newest message of `topic`, 0 while it has none.
    public func latestOffset(topic: String) async throws -> Int64 {
        try await store.read(topic: topic, after: 0, limit: 0).latestOffset
    }

    public func committedOffset(topic: String, group: String) async throws -> Int64 {
        try await store.committedOffset(topic: topic, group: group)
    }

    public func commit(topic: String, group: String, offset: Int64) async throws {
        try await store.commit(topic: topic, group: group, offset: Self.clamped(offset))
    }

    /// Applies retention to every topic that holds more than its policy keeps; returns how many messages
    /// went. Topics with a policy of their own are trimmed by it; the rest only when the default has work.
    @discardableResult
    public func applyRetention(now: Date = Date()) async throws -> Int {
        var removed = 0
        for (topic, policy) in configuration.topicRetention {
            removed += try await store.trim(topic: topic, keeping: policy, now: now)
        }
        let defaults = configuration.retention
        for topic in try await store.topicNames(holdingMoreThan: defaults, now: now)
        where configuration.topicRetention[topic] == nil {
            removed += try await store.trim(topic: topic, keeping: defaults, now: now)
        }
        return removed
    }

    public func run() async throws {
        if configuration.retention != RetentionPolicy() || !configuration.topicRetention.isEmpty {
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                _ = try? await applyRetention()
                let interval = configuration.retentionInterval
                try? await cancelWhenGracefulShutdown {
                    try await Task.sleep(for: interval)
                }
            }
        } else {
            try? await gracefulShutdown()
        }
        subscribers.closeAll()
    }
}
