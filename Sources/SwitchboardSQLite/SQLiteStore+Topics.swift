import Foundation
import GRDB
import SwitchboardStore

extension SQLiteStore: TopicStore {
    public func append(_ messages: [NewMessage]) async throws -> [StoredMessage] {
        try await pool.write { db in try Self.append(messages, in: db) }
    }

    /// Appends `messages` inside the caller's transaction, so that other writes commit with them.
    static func append(_ messages: [NewMessage], in db: Database) throws -> [StoredMessage] {
        let timestamp = Date().millisecondsSince1970
        var nextOffsets: [String: Int64] = [:]
        let createTopic = try db.cachedStatement(
            sql: "INSERT INTO topics (name, next_offset) VALUES (?, 1) ON CONFLICT (name) DO NOTHING"
        )
        let nextOffset = try db.cachedStatement(sql: "SELECT next_offset FROM topics WHERE name = ?")
        for topic in Set(messages.map(\.topic)) {
            try createTopic.execute(arguments: [topic])
            nextOffsets[topic] = try Int64.fetchOne(nextOffset, arguments: [topic])
        }
        let insert = try db.cachedStatement(
            sql: """
                INSERT INTO topic_messages (topic, "offset", id, published_at, content_type, body)
                VALUES (?, ?, ?, ?, ?, ?)
                """
        )
        var stored: [StoredMessage] = []
        stored.reserveCapacity(messages.count)
        for message in messages {
            let offset = nextOffsets[message.topic]!
            nextOffsets[message.topic] = offset + 1
            let id = UUID().uuidString.lowercased()
            try insert.execute(arguments: [
                message.topic, offset, id, timestamp, message.contentType, message.body,
            ])
            let committed = StoredMessage(
                topic: message.topic,
                offset: offset,
                id: id,
                timestamp: timestamp,
                contentType: message.contentType,
                body: message.body
            )
            try record(message.receipt, of: committed, in: db)
            stored.append(committed)
        }
        let advance = try db.cachedStatement(sql: "UPDATE topics SET next_offset = ? WHERE name = ?")
        for (topic, next) in nextOffsets {
            try advance.execute(arguments: [next, topic])
        }
        return stored
    }

    public func read(topic: String, after: Int64, limit: Int) async throws -> TopicSlice {
        try await pool.read { db in
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT "offset", id, published_at, content_type, body FROM topic_messages
                    WHERE topic = ? AND "offset" > ? ORDER BY "offset" LIMIT ?
                    """,
                arguments: [topic, after, limit]
            )
            let messages = rows.map { row in
                StoredMessage(
                    topic: topic,
                    offset: row[0],
                    id: row[1],
                    timestamp: row[2],
                    contentType: row[3],
                    body: row[4]
                )
            }
            let next = try Int64.fetchOne(db, sql: "SELECT next_offset FROM topics WHERE name = ?", arguments: [topic])
            let latest = (next ?? 1) - 1
            let earliest =
                try Int64.fetchOne(
                    db,
                    sql: #"SELECT MIN("offset") FROM topic_messages WHERE topic = ?"#,
                    arguments: [topic]
                ) ?? latest + 1
            return TopicSlice(messages: messages, earliestOffset: earliest, latestOffset: latest)
        }
    }

    public func trim(topic: String, keeping policy: RetentionPolicy, now: Date) async throws -> Int {
        try await pool.write { db in
            var removed = 0
            if let maxMessages = policy.maxMessages {
                try db.execute(
                    sql: """
                        DELETE FROM topic_messages WHERE topic = ? AND "offset" <=
                            (SELECT next_offset - 1 - ? FROM topics WHERE name = ?)
                        """,
                    arguments: [topic, maxMessages, topic]
                )
                removed += db.changesCount
            }
            if let maxAge = policy.maxAgeSeconds {
                let cutoff = now.millisecondsSince1970 - maxAge * 1000
                try db.execute(
                    sql: "DELETE FROM topic_messages WHERE topic = ? AND published_at < ?",
                    arguments: [topic, cutoff]
                )
                removed += db.changesCount
            }
            return removed
        }
    }

    public func topicNames(holdingMoreThan policy: RetentionPolicy, now: Date) async throws -> [String] {
        let cutoff = policy.maxAgeSeconds.map { now.millisecondsSince1970 - $0 * 1000 }
        return try await pool.read { db in
            // Two index seeks per topic: its first offset, and the time of its oldest message.
            try String.fetchAll(
                db,
                sql: """
                    SELECT name FROM topics t WHERE
                        (?1 IS NOT NULL AND t.next_offset - COALESCE(
                            (SELECT MIN("offset") FROM topic_messages m WHERE m.topic = t.name), t.next_offset) > ?1)
                        OR (?2 IS NOT NULL AND (SELECT published_at FROM topic_messages m WHERE m.topic = t.name
                            ORDER BY "offset" LIMIT 1) < ?2)
                    """,
                arguments: [policy.maxMessages, cutoff]
            )
        }
    }

    public func topics(limit: Int) async throws -> [TopicSummary] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT t.name, t.next_offset - 1,
                    COALESCE((SELECT MIN("offset") FROM topic_messages m WHERE m.topic = t.name), t.next_offset)
                    FROM topics t WHERE t.name NOT LIKE 'jobs.%' ORDER BY t.name LIMIT ?
                    """,
                arguments: [limit]
            ).map { TopicSummary(name: $0[0], earliestOffset: $0[2], latestOffset: $0[1]) }
        }
    }

    public func committedOffset(topic: String, group: String) async throws -> Int64 {
        try await pool.read { db in
            try Int64.fetchOne(
                db,
                sql: "SELECT committed_offset FROM consumer_groups WHERE topic = ? AND name = ?",
                arguments: [topic, group]
            ) ?? 0
        }
    }

    public func commit(topic: String, group: String, offset: Int64) async throws {
        try await pool.write { db in
            try db.execute(
                sql: """
                    INSERT INTO consumer_groups (topic, name, committed_offset) VALUES (?, ?, ?)
                    ON CONFLICT (topic, name) DO UPDATE SET committed_offset = excluded.committed_offset
                    """,
                arguments: [topic, group, offset]
            )
        }
    }
}
