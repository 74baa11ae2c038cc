import Logging
import PostgresNIO
import SwitchboardStore

/// Tells the other nodes what this node committed, with `NOTIFY`, once the commit is done and in batches:
/// a `NOTIFY` inside a transaction serializes every notifying commit on PostgreSQL's notification queue
/// lock (measured here: 22,000 inserts/s alone, 6,300/s with a notify each), while one statement after
/// the fact announces everything a moment's commits did, the newest offset of each topic once.
///
/// A node that dies between a commit and its announcement leaves the others unwoken: they notice the
/// node's heartbeat stop and send their subscribers back to the store (`RemoteChange.missed`).
final class Announcer: Sendable {
    private enum Announcement: Sendable {
        case appended(topic: String, through: Int64)
        case queued(queue: String, count: Int)
    }

    private let queue: BatchQueue<Announcement>

    init(client: PostgresClient, node: String, channel: String, logger: Logger) {
        queue = BatchQueue(maxBatch: 4096) { batch in
            var offsets: [String: Int64] = [:]
            var counts: [String: Int] = [:]
            for announcement in batch {
                switch announcement {
                case .appended(let topic, let through): offsets[topic] = max(offsets[topic] ?? 0, through)
                case .queued(let queue, let count): counts[queue, default: 0] += count
                }
            }
            let payloads =
                offsets.map { AnnouncementPayload.appended(topic: $0, through: $1, by: node) }
                + counts.map { AnnouncementPayload.queued(queue: $0, count: $1, by: node) }
            do {
                try await client.query(
                    "SELECT pg_notify(\(channel), payload) FROM UNNEST(\(payloads)) AS p(payload)",
                    logger: logger
                )
            } catch {
                // The others' LISTEN connections fail too when the database is gone, and they reread the
                // store when they are back.
                logger.warning("Announcing commits failed", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Announces committed messages: the newest offset of each topic.
    func appended(_ messages: [StoredMessage]) {
        for message in messages {
            queue.submit(.appended(topic: message.topic, through: message.offset))
        }
    }

    /// Announces job changes: their events, and the jobs that are due now to idle workers.
    func changed(_ changes: [JobChange], now: Int64) {
        appended(changes.compactMap(\.event))
        for change in changes where change.job.state == .queued && change.job.runAt <= now {
            queue.submit(.queued(queue: change.job.queue, count: 1))
        }
    }
}

/// What one node's commit tells the others, as a `NOTIFY` payload: the sending node, a kind, a number
/// and a name, separated by tabs (names never hold tabs).
enum AnnouncementPayload {
    static func appended(topic: String, through offset: Int64, by node: String) -> String {
        "\(node)\ta\t\(offset)\t\(topic)"
    }

    static func queued(queue: String, count: Int, by node: String) -> String {
        "\(node)\tq\t\(count)\t\(queue)"
    }

    /// The change a payload announces, unless this node sent it itself or it is malformed.
    static func decode(_ payload: String, ignoring node: String) -> RemoteChange? {
        let fields = payload.split(separator: "\t", maxSplits: 3, omittingEmptySubsequences: false)
        guard fields.count == 4, fields[0] != node, let number = Int64(fields[2]) else { return nil }
        switch fields[1] {
        case "a": return .appended(topic: String(fields[3]), through: number)
        case "q": return .queued(queue: String(fields[3]), count: Int(number))
        default: return nil
        }
    }
}
