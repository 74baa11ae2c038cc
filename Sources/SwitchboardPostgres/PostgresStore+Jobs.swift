import Foundation
import NIOCore
import PostgresNIO
import SwitchboardStore

extension PostgresStore: JobStore {
    public func submit(
        _ new: NewJob,
        now: Int64,
        event: @escaping JobEventRenderer,
        receipt: IdempotencyReceipt<JobChange>?
    ) async throws -> JobChange {
        guard let key = new.uniqueKey else {
            return try await submissions.submit(Job(submitted: new, now: now), to: self, event: event, receipt: receipt)
        }
        return try await changing(now: now) { [self] connection in
            // Submissions of one unique key queue up here, so only the first creates the job.
            try await connection.query(
                "SELECT pg_advisory_xact_lock(hashtext(\(new.queue)), hashtext(\(key)))",
                logger: logger
            )
            let since = Job.uniquenessWindowStart(for: new, now: now)
            let existing = try await jobs(
                where: "queue = $1 AND unique_key = $2 AND created_at >= $3 ORDER BY created_at DESC LIMIT 1",
                [new.queue, key, since],
                on: connection
            )
            if let job = existing.first {
                let change = JobChange(job: job, event: nil)
                try await record(receipt, of: change, on: connection)
                return change
            }
            let job = Job(submitted: new, now: now)
            try await connection.query(
                """
                INSERT INTO jobs (id, queue, type, input, state, priority, attempts, max_attempts, timeout_seconds,
                    run_at, created_at, updated_at, unique_key, version)
                VALUES (\(job.id), \(job.queue), \(job.type), \(ByteBuffer(data: job.input)), \(job.state.rawValue),
                    \(job.priority), 0, \(job.maxAttempts), \(job.timeoutSeconds), \(job.runAt), \(now), \(now),
                    \(key), 1)
                """,
                logger: logger
            )
            let change = JobChange(job: job, event: try await append([event(job)], on: connection).first)
            try await record(receipt, of: change, on: connection)
            return change
        }
    }

    public func job(id: String) async throws -> Job? {
        try await withConnection { [self] connection in
            try await jobs(where: "id = $1", [id], on: connection).first
        }
    }

    public func jobs(queue: String?, state: JobState?, limit: Int) async throws -> [Job] {
        try await withConnection { [self] connection in
            try await jobs(
                where: """
                    ($1::text IS NULL OR queue = $1) AND ($2::text IS NULL OR state = $2)
                    ORDER BY created_at DESC LIMIT $3
                    """,
                [queue, state?.rawValue, limit],
                on: connection
            )
        }
    }

    public func queueCounts() async throws -> [String: [JobState: Int]] {
        try await withConnection { [self] connection in
            var counts: [String: [JobState: Int]] = [:]
            for try await (queue, state, count) in try await connection.query(
                "SELECT queue, state, COUNT(*) FROM jobs GROUP BY queue, state",
                logger: logger
            ).decode((String, String, Int64).self) {
                counts[queue, default: [:]][try CorruptJobRow.state(state, of: "queue \(queue)")] = Int(count)
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
        try await changing(now: now) { [self] connection in
            // Rows another node is claiming right now are skipped, not waited for.
            let due = try await jobs(
                where: """
                    queue = $1 AND state = 'queued' AND run_at <= $2 ORDER BY priority DESC, run_at LIMIT $3
                    FOR UPDATE SKIP LOCKED
                    """,
                [queue, now, limit],
                on: connection
            )
            let leased = due.map { job in
                var job = job
                job.lease(for: leaseMilliseconds, now: now)
                return job
            }
            return try await save(leased, now: now, on: connection, event: event)
        }
    }

    public func heartbeat(id: String, token: String, leaseMilliseconds: Int64, now: Int64) async throws -> Job {
        try await transaction { [self] connection in
            var job = try await leased(id: id, token: token, now: now, on: connection)
            job.leaseExpiresAt = now + leaseMilliseconds
            try await connection.query(
                "UPDATE jobs SET lease_expires_at = \(job.leaseExpiresAt) WHERE id = \(id)",
                logger: logger
            )
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
        try await attemptEnds.end(id: id, token: token, in: self, now: now, event: event) { job in
            job.state = .succeeded
            job.result = result
            job.error = nil
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
        try await attemptEnds.end(id: id, token: token, in: self, now: now, event: event) { job in
            job.error = error
            job.endAttempt(retry: retry, now: now)
        }
    }

    public func cancel(id: String, now: Int64, event: @escaping JobEventRenderer) async throws -> JobChange {
        try await changing(now: now) { [self] connection in
            var job = try await existing(id: id, on: connection)
            guard !job.state.isFinal else { throw JobStoreError.wrongState(job.state) }
            job.state = .cancelled
            return try await save([job], now: now, on: connection, event: event)[0]
        }
    }

    public func requeue(id: String, now: Int64, event: @escaping JobEventRenderer) async throws -> JobChange {
        try await changing(now: now) { [self] connection in
            var job = try await existing(id: id, on: connection)
            guard job.state.isFinal && job.state != .succeeded else { throw JobStoreError.wrongState(job.state) }
            job.state = .queued
            job.attempts = 0
            job.runAt = now
            return try await save([job], now: now, on: connection, event: event)[0]
        }
    }

    /// One node at a time sweeps (the others find the advisory lock taken and return at once).
    public func expireLeases(now: Int64, event: @escaping JobEventRenderer) async throws -> [JobChange] {
        try await changing(now: now) { [self] connection in
            var sweeper = false
            for try await taken in try await connection.query(
                "SELECT pg_try_advisory_xact_lock(\(Self.leaseSweepLock))",
                logger: logger
            ).decode(Bool.self) {
                sweeper = taken
            }
            guard sweeper else { return [] }
            let expired = try await jobs(
                where: "state = 'running' AND lease_expires_at <= $1 LIMIT 1000 FOR UPDATE SKIP LOCKED",
                [now],
                on: connection
            )
            let ended = expired.map { job in
                var job = job
                job.error = job.leaseExpiredError
                job.endAttempt(retry: { _ in 0 }, now: now)
                return job
            }
            return try await save(ended, now: now, on: connection, event: event)
        }
    }

    public func nextDue(queue: String) async throws -> Int64? {
        try await values("SELECT MIN(run_at) FROM jobs WHERE queue = \(queue) AND state = 'queued'", as: Int64?.self)
            .first ?? nil
    }

    public func deleteFinishedJobs(before: Int64, limit: Int) async throws -> Int {
        try await transaction { [self] connection in
            var topics: [String] = []
            for try await id in try await connection.query(
                """
                DELETE FROM jobs WHERE id IN (
                    SELECT id FROM jobs WHERE state = ANY(\(Job.finishedStates)) AND updated_at < \(before)
                    LIMIT \(limit) FOR UPDATE SKIP LOCKED)
                RETURNING id
                """,
                logger: logger
            ).decode(String.self) {
                topics.append("jobs.\(id)")
            }
            guard !topics.isEmpty else { return 0 }
            try await connection.query("DELETE FROM topic_messages WHERE topic = ANY(\(topics))", logger: logger)
            try await connection.query("DELETE FROM topics WHERE name = ANY(\(topics))", logger: logger)
            return topics.count
        }
    }

    /// The advisory lock the lease sweeper holds for its transaction.
    static let leaseSweepLock: Int64 = 0x5357_4C45_4153  // "SWLEAS"

    private func existing(id: String, on connection: PostgresConnection) async throws -> Job {
        guard let job = try await jobs(where: "id = $1 FOR UPDATE", [id], on: connection).first else {
            throw JobStoreError.notFound
        }
        return job
    }

    /// The running job whose current, unexpired lease is `token`, locked for the transaction.
    private func leased(id: String, token: String, now: Int64, on connection: PostgresConnection) async throws -> Job {
        let job = try await existing(id: id, on: connection)
        guard job.isLeased(by: token, now: now) else { throw JobStoreError.leaseLost }
        return job
    }

    /// Saves state changes and appends their events to the jobs' topics, in the caller's transaction.
    private func save(
        _ jobs: [Job],
        now: Int64,
        on connection: PostgresConnection,
        event: JobEventRenderer
    ) async throws -> [JobChange] {
        let saved = jobs.map { job in
            var job = job
            job.changed(at: now)
            return job
        }
        try await update(saved, on: connection)
        let events = try await append(saved.map(event), on: connection)
        return zip(saved, events).map { JobChange(job: $0, event: $1) }
    }

    /// Writes the changed jobs in one statement, in the caller's transaction. Arrays cannot hold NULL
    /// here, so empty values and -1 stand for it where no real value can be one (a result is JSON text,
    /// a lease token a UUID, an expiry a time); an error may be empty, so a flag says whether it is set.
    func update(_ jobs: [Job], on connection: PostgresConnection) async throws {
        guard !jobs.isEmpty else { return }
        try await connection.query(
            """
            UPDATE jobs SET state = u.state, attempts = u.attempts, run_at = u.run_at, updated_at = u.updated_at,
                result = NULLIF(u.result, ''::bytea), error = CASE WHEN u.has_error THEN u.error END,
                lease_token = NULLIF(u.lease_token, ''), lease_expires_at = NULLIF(u.lease_expires_at, -1),
                version = u.version
            FROM UNNEST(\(jobs.map(\.id)), \(jobs.map(\.state.rawValue)), \(jobs.map(\.attempts)),
                \(jobs.map(\.runAt)), \(jobs.map(\.updatedAt)), \(jobs.map { ByteBuffer(data: $0.result ?? Data()) }),
                \(jobs.map { $0.error ?? "" }), \(jobs.map { $0.error != nil }), \(jobs.map { $0.leaseToken ?? "" }),
                \(jobs.map { $0.leaseExpiresAt ?? -1 }), \(jobs.map(\.version)))
                AS u(id, state, attempts, run_at, updated_at, result, error, has_error, lease_token, lease_expires_at,
                    version)
            WHERE jobs.id = u.id
            """,
            logger: logger
        )
    }

    /// The jobs with these ids, locked for the caller's transaction (in id order, as every locker takes
    /// them).
    func lockedJobs(ids: [String], on connection: PostgresConnection) async throws -> [String: Job] {
        let found = try await jobs(where: "id = ANY($1) ORDER BY id FOR UPDATE", [Array(Set(ids))], on: connection)
        return Dictionary(found.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// Runs a transaction of job changes, then announces them to the other nodes.
    private func changing(
        now: Int64,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> [JobChange]
    ) async throws -> [JobChange] {
        let changes = try await transaction(body)
        announcer.changed(changes, now: now)
        return changes
    }

    private func changing(
        now: Int64,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> JobChange
    ) async throws -> JobChange {
        try await changing(now: now) { [try await body($0)] }[0]
    }

    /// The jobs a condition on `jobs` selects, decoded by column name.
    private func jobs(
        where condition: String,
        _ values: [(any PostgresDynamicTypeEncodable)?],
        on connection: PostgresConnection
    ) async throws -> [Job] {
        var bindings = PostgresBindings(capacity: values.count)
        for value in values {
            if let value { bindings.append(value) } else { bindings.appendNull() }
        }
        let query = PostgresQuery(unsafeSQL: "SELECT \(Self.jobColumns) FROM jobs WHERE \(condition)", binds: bindings)
        var jobs: [Job] = []
        for try await row in try await connection.query(query, logger: logger) {
            jobs.append(try Job(row: row.makeRandomAccess()))
        }
        return jobs
    }

    private static let jobColumns = """
        id, queue, type, input, state, priority, attempts, max_attempts, timeout_seconds, run_at, created_at,
        updated_at, result, error, unique_key, lease_token, lease_expires_at, version
        """
}

extension Job {
    /// A row of `jobs`, by column name; an unknown state is an error, never a guess.
    init(row: PostgresRandomAccessRow) throws {
        let id = try row["id"].decode(String.self)
        self.init(
            id: id,
            queue: try row["queue"].decode(String.self),
            type: try row["type"].decode(String.self),
            input: Data(buffer: try row["input"].decode(ByteBuffer.self)),
            state: try CorruptJobRow.state(try row["state"].decode(String.self), of: id),
            priority: try row["priority"].decode(Int.self),
            attempts: try row["attempts"].decode(Int.self),
            maxAttempts: try row["max_attempts"].decode(Int.self),
            timeoutSeconds: try row["timeout_seconds"].decode(Double.self),
            runAt: try row["run_at"].decode(Int64.self),
            createdAt: try row["created_at"].decode(Int64.self),
            updatedAt: try row["updated_at"].decode(Int64.self),
            result: try row["result"].decode(ByteBuffer?.self).map { Data(buffer: $0) },
            error: try row["error"].decode(String?.self),
            uniqueKey: try row["unique_key"].decode(String?.self),
            leaseToken: try row["lease_token"].decode(String?.self),
            leaseExpiresAt: try row["lease_expires_at"].decode(Int64?.self),
            version: try row["version"].decode(Int64.self)
        )
    }
}
