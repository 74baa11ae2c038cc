import Foundation

/// A message to append to a topic's log.
public struct NewMessage: Sendable {
    public var topic: String
    public var contentType: String?
    public var body: Data
    /// The idempotency record of the publish, committed with the message.
    public var receipt: IdempotencyReceipt<StoredMessage>?

    public init(
        topic: String,
        contentType: String? = nil,
        body: Data,
        receipt: IdempotencyReceipt<StoredMessage>? = nil
    ) {
        self.topic = topic
        self.contentType = contentType
        self.body = body
        self.receipt = receipt
    }
}

/// A message as the log holds it: its topic, its dense offset (the first is 1), a unique id and the
/// commit time in milliseconds since 1970.
public struct StoredMessage: Sendable, Equatable {
    public var topic: String
    public var offset: Int64
    public var id: String
    public var timestamp: Int64
    public var contentType: String?
    public var body: Data

    public init(topic: String, offset: Int64, id: String, timestamp: Int64, contentType: String?, body: Data) {
        self.topic = topic
        self.offset = offset
        self.id = id
        self.timestamp = timestamp
        self.contentType = contentType
        self.body = body
    }
}

/// What a read found: the messages after the asked offset, and the bounds of what the log still holds.
public struct TopicSlice: Sendable, Equatable {
    public var messages: [StoredMessage]
    /// The first offset still retained; a reader that asked for older ones has missed the rest.
    public var earliestOffset: Int64
    /// The offset of the newest message, 0 while the topic is empty.
    public var latestOffset: Int64

    public init(messages: [StoredMessage], earliestOffset: Int64, latestOffset: Int64) {
        self.messages = messages
        self.earliestOffset = earliestOffset
        self.latestOffset = latestOffset
    }
}

/// A topic and the bounds of its log.
public struct TopicSummary: Sendable, Equatable {
    public var name: String
    /// The first offset still retained (one past `latestOffset` when none is).
    public var earliestOffset: Int64
    /// The offset of the newest message, 0 while the topic is empty.
    public var latestOffset: Int64

    public init(name: String, earliestOffset: Int64, latestOffset: Int64) {
        self.name = name
        self.earliestOffset = earliestOffset
        self.latestOffset = latestOffset
    }
}

/// How many messages, and how old, a topic keeps.
public struct RetentionPolicy: Sendable, Equatable {
    /// Keep at most this many of the newest messages; `nil` keeps any number.
    public var maxMessages: Int64?
    /// Drop messages older than this many seconds; `nil` keeps them however old.
    public var maxAgeSeconds: Int64?

    public init(maxMessages: Int64? = nil, maxAgeSeconds: Int64? = nil) {
        self.maxMessages = maxMessages
        self.maxAgeSeconds = maxAgeSeconds
    }
}

/// Topics as durable, ordered, append-only logs with dense offsets, and consumer-group positions.
public protocol TopicStore: Sendable {
    /// Appends `messages` in one transaction and returns them with their offsets, in the same order.
    /// Returns only once the transaction is committed.
    func append(_ messages: [NewMessage]) async throws -> [StoredMessage]
    /// Up to `limit` messages with offsets greater than `after`, oldest first.
    func read(topic: String, after: Int64, limit: Int) async throws -> TopicSlice
    /// Drops messages the policy no longer keeps; returns how many went.
    func trim(topic: String, keeping policy: RetentionPolicy, now: Date) async throws -> Int
    /// The topics that hold more than `policy` keeps: the ones retention has work on.
    func topicNames(holdingMoreThan policy: RetentionPolicy, now: Date) async throws -> [String]
    /// Up to `limit` topics in name order, leaving out the server's per-job topics (`jobs.*`).
    func topics(limit: Int) async throws -> [TopicSummary]
    /// The offset a consumer group has committed on a topic; 0 before its first commit.
    func committedOffset(topic: String, group: String) async throws -> Int64
    /// Records that `group` has processed `topic` up to `offset`.
    func commit(topic: String, group: String, offset: Int64) async throws
}
