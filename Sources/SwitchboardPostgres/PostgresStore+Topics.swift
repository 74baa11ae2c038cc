import Foundation
import NIOCore
import PostgresNIO
import SwitchboardStore

extension PostgresStore: TopicStore {
    public func append(_ messages: [NewMessage]) async throws -> [StoredMessage] {
        let stored = try await transaction { [self] connection in try await append(messages, on: connection) }
        announcer.appended(stored)
        return stored
    }

    /// Appends `messages` inside the caller's transaction (who announces them once it has committed).
    /// Offsets come from each topic's row, whose lock the transaction holds until it commits: the next
    /// transaction on the topic waits, so offsets stay dense and commit in order across nodes.
    func append(_ messages: [NewMessage], on connection: PostgresConnection) async throws -> [StoredMessage] {
        guard !messages.isEmpty else { return [] }
        let timestamp = Date().millisecondsSince1970
        var counts: [String: Int64] = [:]
        for message in messages { counts[message.topic, default: 0] += 1 }
        // One statement for every topic of the batch, taking their rows in one order on every node, so
        // that two batches never wait for each other's rows.
        let topics = counts.keys.sorted()
        var nextOffsets: [String: Int64] = [:]
        let rows = try await connection.query(
            """
            INSERT INTO topics (name, next_offset)
            SELECT name, count + 1 FROM UNNEST(\(topics), \(topics.map { counts[$0]! })) AS t(name, count) ORDER BY name
            ON CONFLICT (name) DO UPDATE SET next_offset = topics.next_offset + excluded.next_offset - 1
            RETURNING name, next_offset
            """,
            logger: logger
        )
        for try await (topic, next) in rows.decode((String, Int64).self) { nextOffsets[topic] = next - counts[topic]! }
        var stored: [StoredMessage] = []
        stored.reserveCapacity(messages.count)
        for message in messages {
            let offset = nextOffsets[message.topic]!
            nextOffsets[message.topic] = offset + 1
            stored.append(
                StoredMessage(
                    topic: message.topic,
                    offset: offset,
                    id: UUID().uuidString.lowercased(),
                    timestamp: timestamp,
                    contentType: message.contentType,
                    body: message.body
                )
            )
        }
        try await connection.query(
            """
            INSERT INTO topic_messages (topic, "offset", id, published_at, content_type, body)
            SELECT topic, "offset", id, \(timestamp), CASE WHEN has_content_type THEN content_type END, body
            FROM UNNEST(\(stored.map(\.topic)), \(stored.map(\.offset)), \(stored.map(\.id)),
                \(stored.map { $0.contentType ?? "" }), \(stored.map { $0.contentType != nil }),
                \(stored.map { ByteBuffer(data: $0.body) }))
                AS m(topic, "offset", id, content_type, has_content_type, body)
            """,
            logger: logger
        )
        for (message, committed) in zip(messages, stored) {
            try await record(message.receipt, of: committed, on: connection)
        }
        return stored
    }

    public func read(topic: String, after: Int64, limit: Int) async throws -> TopicSlice {
        // One statement, so that the bounds and the messages come from one snapshot.
        try await withConnection { [self] connection in
            let rows = try await connection.query(
                """
                SELECT t.next_offset, (SELECT MIN("offset") FROM topic_messages WHERE topic = t.name),
                    m."offset", m.id, m.published_at, m.content_type, m.body
                FROM topics t LEFT JOIN LATERAL (
                    SELECT "offset", id, published_at, content_type, body FROM topic_messages
                    WHERE topic = t.name AND "offset" > \(after) ORDER BY "offset" LIMIT \(limit)
                ) m ON true
                WHERE t.name = \(topic)
                ORDER BY m."offset"
                """,
                logger: logger
            )
            var latest: Int64 = 0
            var earliest: Int64?
            var messages: [StoredMessage] = []
            for try await (next, first, offset, id, publishedAt, contentType, body) in rows.decode(
                (Int64, Int64?, Int64?, String?, Int64?, String?, ByteBuffer?).self
            ) {
                latest = next - 1
                earliest = first
                if let offset, let id, let publishedAt, let body {
                    messages.append(
                        StoredMessage(
                            topic: topic,
                            offset: offset,
                            id: id,
                            timestamp: publishedAt,
                            contentType: contentType,
                            body: Data(buffer: body)
                        )
                    )
                }
            }
            return TopicSlice(messages: messages, earliestOffset: earliest ?? latest + 1, latestOffset: latest)
        }
    }

    public func trim(topic: String, keeping policy: RetentionPolicy, now: Date) async throws -> Int {
        var removed = 0
        if let maxMessages = policy.maxMessages {
            removed += try await count(
                """
                WITH gone AS (DELETE FROM topic_messages WHERE topic = \(topic) AND "offset" <=
                    (SELECT next_offset - 1 - \(maxMessages) FROM topics WHERE name = \(topic)) RETURNING 1)
                SELECT COUNT(*) FROM gone
                """
            )
        }
        if let maxAge = policy.maxAgeSeconds {
            let cutoff = now.millisecondsSince1970 - maxAge * 1000
            removed += try await count(
                """
                WITH gone AS (DELETE FROM topic_messages WHERE topic = \(topic) AND published_at < \(cutoff)
                    RETURNING 1)
                SELECT COUNT(*) FROM gone
                """
            )
        }
        return removed
    }

    public func topicNames(holdingMoreThan policy: RetentionPolicy, now: Date) async throws -> [String] {
        let cutoff = policy.maxAgeSeconds.map { now.millisecondsSince1970 - $0 * 1000 }
        return try await values(
            """
            SELECT name FROM topics t WHERE
                (\(policy.maxMessages)::bigint IS NOT NULL AND t.next_offset - COALESCE(
                    (SELECT MIN("offset") FROM topic_messages m WHERE m.topic = t.name), t.next_offset)
                    > \(policy.maxMessages)::bigint)
                OR (\(cutoff)::bigint IS NOT NULL AND (SELECT published_at FROM topic_messages m
                    WHERE m.topic = t.name ORDER BY "offset" LIMIT 1) < \(cutoff)::bigint)
            """,
            as: String.self
        )
    }

    public func topics(limit: Int) async throws -> [TopicSummary] {
        try await withConnection { [self] connection in
            var topics: [TopicSummary] = []
            for try await (name, latest, earliest) in try await connection.query(
                """
                SELECT t.name, t.next_offset - 1,
                    COALESCE((SELECT MIN("offset") FROM topic_messages m WHERE m.topic = t.name), t.next_offset)
                    FROM topics t WHERE t.name NOT LIKE 'jobs.%' ORDER BY t.name LIMIT \(limit)
                """,
                logger: logger
            ).decode((String, Int64, Int64).self) {
                topics.append(TopicSummary(name: name, earliestOffset: earliest, latestOffset: latest))
            }
            return topics
        }
    }

    public func committedOffset(topic: String, group: String) async throws -> Int64 {
        try await values(
            "SELECT committed_offset FROM consumer_groups WHERE topic = \(topic) AND name = \(group)",
            as: Int64.self
        ).first ?? 0
    }

    public func commit(topic: String, group: String, offset: Int64) async throws {
        try await execute(
            """
            INSERT INTO consumer_groups (topic, name, committed_offset) VALUES (\(topic), \(group), \(offset))
            ON CONFLICT (topic, name) DO UPDATE SET committed_offset = excluded.committed_offset
            """
        )
    }

    /// The single number a statement returns (a count).
    func count(_ query: PostgresQuery) async throws -> Int {
        Int(try await values(query, as: Int64.self).first ?? 0)
    }
}
