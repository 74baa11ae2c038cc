import Foundation
import GRDB
import SwitchboardStore

extension SQLiteStore: JobStore {
    public func submit(
        _ new: NewJob,
        now: Int64,
        event: @escaping JobEventRenderer,
        receipt: IdempotencyReceipt<JobChange>?
    ) async throws -> JobChange {
        try await writes.write { db in
            let change = try Self.submit(new, now: now, event: event, in: db)
            try Self.record(receipt, of: change, in: db)
            return change
        }
    }

    private static func submit(_ new: NewJob, now: Int64, event: @escaping JobEventRenderer, in db: Database) throws
        -> JobChange
    {
        if let key = new.uniqueKey,
            let existing = try Job.fetchOne(
                db,
                where: "queue = ? AND unique_key = ? AND created_at >= ? ORDER BY created_at DESC",
                arguments: [new.queue, key, Job.uniquenessWindowStart(for: new, now: now)]
            )
        {
            return JobChange(job: existing, event: nil)
        }
        let job = Job(submitted: new, now: now)
        try db.cachedStatement(
            sql: """
                INSERT INTO jobs (id, queue, type, input, state, priority, attempts, max_attempts,
                    timeout_seconds, run_at, created_at, updated_at, unique_key, version)
                VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, 1)
                """
        ).execute(arguments: [
            job.id, job.queue, job.type, job.input, job.state.rawValue, job.priority, job.maxAttempts,
            job.timeoutSeconds, job.runAt, now, now, job.uniqueKey,
        ])
        return JobChange(job: job, event: try append([event(job)], in: db).first)
    }

    public func job(id: String) async throws -> Job? {
        try await pool.read { db in try Job.fetchOne(db, where: "id = ?", arguments: [id]) }
    }

    public func jobs(queue: String?, state: JobState?, limit: Int) async throws -> [Job] {
        try await pool.read { db in
            try Job.fetchAll(
                db,
                where: "(?1 IS NULL OR queue = ?1) AND (?2 IS NULL OR state = ?2) ORDER BY created_at DESC LIMIT ?3",
                arguments: [queue, state?.rawValue, limit]
            )
        }
    }

    public func queueCounts() async throws -> [String: [JobState: Int]] {
        try await pool.read { db in
            var counts: [String: [JobState: Int]] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT queue, state, COUNT(*) FROM jobs GROUP BY queue, state") {
                let queue: String = row[0]
                let state: String = row[1]
                counts[queue, default: [:]][try CorruptJobRow.state(state, of: "queue \(queue)")] = row[2]
            }
            return counts
        }
    }

    public func claim(
        queue: String,
        limit: Int,
        leaseMilliseconds: Int64,
        now: Int64,
        event: @escaping JobEventRenderer
    ) async throws -> [JobChange] {
        try await writes.write { db in
            let due = try Job.fetchAll(
                db,
                where: "queue = ? AND state = 'queued' AND run_at <= ? ORDER BY priority DESC, run_at LIMIT ?",
                arguments: [queue, now, limit]
            )
            return try due.map { job in
                var job = job
                job.lease(for: leaseMilliseconds, now: now)
                return try Self.announce(job, now: now, in: db, event: event)
            }
        }
    }

    public func heartbeat(id: String, token: String, leaseMilliseconds: Int64, now: Int64) async throws -> Job {
        try await writes.write { db in
            var job = try Self.leased(id: id, token: token, now: now, in: db)
            job.leaseExpiresAt = now + leaseMilliseconds
            try db.cachedStatement(sql: "UPDATE jobs SET lease_expires_at = ? WHERE id = ?")
                .execute(arguments: [job.leaseExpiresAt, id])
            return job
        }
    }

    public func complete(
        id: String,
        token: String,
        result: Data,
        now: Int64,
        event: @escaping JobEventRenderer
    ) async throws -> JobChange {
        try await writes.write { db in
            var job = try Self.leased(id: id, token: token, now: now, in: db)
            job.state = .succeeded
            job.result = result
            job.error = nil
            return try Self.announce(job, now: now, in: db, event: event)
        }
    }

    public func fail(
        id: String,
        token: String,
        error: String,
        retry: @escaping RetryPolicy,
        now: Int64,
        event: @escaping JobEventRenderer
    ) async throws -> JobChange {
        try await writes.write { db in
            var job = try Self.leased(id: id, token: token, now: now, in: db)
            job.error = error
            job.endAttempt(retry: retry, now: now)
            return try Self.announce(job, now: now, in: db, event: event)
        }
    }

    public func cancel(id: String, now: Int64, event: @escaping JobEventRenderer) async throws -> JobChange {
        try await writes.write { db in
            var job = try Self.existing(id: id, in: db)
            guard !job.state.isFinal else { throw JobStoreError.wrongState(job.state) }
            job.state = .cancelled
            return try Self.announce(job, now: now, in: db, event: event)
        }
    }

    public func requeue(id: String, now: Int64, event: @escaping JobEventRenderer) async throws -> JobChange {
        try await writes.write { db in
            var job = try Self.existing(id: id, in: db)
            guard job.state.isFinal && job.state != .succeeded else { throw JobStoreError.wrongState(job.state) }
            job.state = .queued
            job.attempts = 0
            job.runAt = now
            return try Self.announce(job, now: now, in: db, event: event)
        }
    }

    public func expireLeases(now: Int64, event: @escaping JobEventRenderer) async throws -> [JobChange] {
        try await writes.write { db in
            let expired = try Job.fetchAll(
                db,
                where: "state = 'running' AND lease_expires_at <= ? LIMIT 1000",
                arguments: [now]
            )
            return try expired.map { job in
                var job = job
                job.error = job.leaseExpiredError
                job.endAttempt(retry: { _ in 0 }, now: now)
                return try Self.announce(job, now: now, in: db, event: event)
            }
        }
    }

    public func nextDue(queue: String) async throws -> Int64? {
        try await pool.read { db in
            try Int64.fetchOne(
                db,
                sql: "SELECT MIN(run_at) FROM jobs WHERE queue = ? AND state = 'queued'",
                arguments: [queue]
            )
        }
    }

    public func deleteFinishedJobs(before: Int64, limit: Int) async throws -> Int {
        try await writes.write { db in
            let finished = try String.fetchAll(
                db,
                sql: """
                    SELECT id FROM jobs WHERE state IN (\(Job.finishedStates.map { "'\($0)'" }.joined(separator: ", ")))
                    AND updated_at < ? LIMIT ?
                    """,
                arguments: [before, limit]
            )
            for id in finished {
                let topic = "jobs.\(id)"
                try db.execute(sql: "DELETE FROM topic_messages WHERE topic = ?", arguments: [topic])
                try db.execute(sql: "DELETE FROM topics WHERE name = ?", arguments: [topic])
                try db.execute(sql: "DELETE FROM jobs WHERE id = ?", arguments: [id])
            }
            return finished.count
        }
    }

    private static func existing(id: String, in db: Database) throws -> Job {
        guard let job = try Job.fetchOne(db, where: "id = ?", arguments: [id]) else {
            throw JobStoreError.notFound
        }
        return job
    }

    /// The running job whose current, unexpired lease is `token`.
    private static func leased(id: String, token: String, now: Int64, in db: Database) throws -> Job {
        let job = try existing(id: id, in: db)
        guard job.isLeased(by: token, now: now) else { throw JobStoreError.leaseLost }
        return job
    }

    /// Saves a state change and appends its event to the job's topic, in the caller's transaction.
    private static func announce(
        _ job: Job,
        now: Int64,
        in db: Database,
        event: @escaping JobEventRenderer
    ) throws -> JobChange {
        var job = job
        job.changed(at: now)
        try db.cachedStatement(
            sql: """
                UPDATE jobs SET state = ?, attempts = ?, run_at = ?, updated_at = ?, result = ?, error = ?,
                    lease_token = ?, lease_expires_at = ?, version = ? WHERE id = ?
                """
        ).execute(arguments: [
            job.state.rawValue, job.attempts, job.runAt, job.updatedAt, job.result, job.error, job.leaseToken,
            job.leaseExpiresAt, job.version, job.id,
        ])
        let stored = try append([event(job)], in: db)
        return JobChange(job: job, event: stored.first)
    }
}

extension Job {
    private static let columns = """
        id, queue, type, input, state, priority, attempts, max_attempts, timeout_seconds, run_at, created_at,
        updated_at, result, error, unique_key, lease_token, lease_expires_at, version
        """

    /// A row of `jobs`, by column name. A state this build does not know is an error, not a guess: a
    /// job must never run again because its row could not be read.
    init(row: Row) throws {
        self.init(
            id: row["id"],
            queue: row["queue"],
            type: row["type"],
            input: row["input"],
            state: try CorruptJobRow.state(row["state"], of: row["id"]),
            priority: row["priority"],
            attempts: row["attempts"],
            maxAttempts: row["max_attempts"],
            timeoutSeconds: row["timeout_seconds"],
            runAt: row["run_at"],
            createdAt: row["created_at"],
            updatedAt: row["updated_at"],
            result: row["result"],
            error: row["error"],
            uniqueKey: row["unique_key"],
            leaseToken: row["lease_token"],
            leaseExpiresAt: row["lease_expires_at"],
            version: row["version"]
        )
    }

    static func fetchOne(_ db: Database, where condition: String, arguments: StatementArguments) throws -> Job? {
        try fetchAll(db, where: condition + " LIMIT 1", arguments: arguments).first
    }

    static func fetchAll(_ db: Database, where condition: String, arguments: StatementArguments) throws -> [Job] {
        try Row.fetchAll(
            db.cachedStatement(sql: "SELECT \(columns) FROM jobs WHERE \(condition)"),
            arguments: arguments
        )
        .map(Job.init(row:))
    }
}
