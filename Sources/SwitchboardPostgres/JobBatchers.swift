import Foundation
import NIOCore
import PostgresNIO
import SwitchboardStore

/// Group commit for job submissions, the hottest write of the queue: submissions that arrive while one
/// batch commits go together into the next transaction, with one statement per table for the whole
/// batch, so that a busy node pays one commit (and one disk flush) per batch rather than per job.
/// Unique jobs, which must look for an existing one first, do not come here.
final class SubmissionBatcher: Sendable {
    struct Submission: Sendable {
        var store: PostgresStore
        var job: Job
        var event: JobEventRenderer
        var receipt: IdempotencyReceipt<JobChange>?
        var reply: @Sendable (Result<JobChange, any Error>) -> Void
    }

    private let queue: BatchQueue<Submission>

    init() {
        queue = BatchQueue(maxBatch: 512) { batch in
            try await Self.commit(batch)
        } fail: { submission, error in
            submission.reply(.failure(error))
        }
    }

    private static func commit(_ batch: [Submission]) async throws {
        let store = batch[0].store
        let changes = try await store.transaction { connection in
            try await store.insert(batch.map(\.job), on: connection)
            let events = try await store.append(batch.map { $0.event($0.job) }, on: connection)
            let changes = zip(batch, events).map { JobChange(job: $0.job, event: $1) }
            for (submission, change) in zip(batch, changes) {
                try await store.record(submission.receipt, of: change, on: connection)
            }
            return changes
        }
        store.announcer.changed(changes, now: batch.map(\.job.createdAt).max() ?? 0)
        for (submission, change) in zip(batch, changes) { submission.reply(.success(change)) }
    }

    /// Submits `job` to `store` with the next batch; returns once that batch has committed.
    func submit(
        _ job: Job,
        to store: PostgresStore,
        event: @escaping JobEventRenderer,
        receipt: IdempotencyReceipt<JobChange>?
    ) async throws -> JobChange {
        try await withCheckedThrowingContinuation { continuation in
            queue.submit(
                Submission(store: store, job: job, event: event, receipt: receipt) { continuation.resume(with: $0) }
            )
        }
    }
}

/// Group commit for the end of an attempt (complete, fail), the other per-job write: the changes that
/// arrive while one batch commits are checked against their leases together (one locking read) and saved
/// together (one update, one append of their events). A change whose lease is gone fails alone.
final class AttemptEndBatcher: Sendable {
    struct Change: Sendable {
        var store: PostgresStore
        var id: String
        var token: String
        var now: Int64
        /// What the attempt's end does to the job.
        var apply: @Sendable (inout Job) -> Void
        var event: JobEventRenderer
        var reply: @Sendable (Result<JobChange, any Error>) -> Void
    }

    private let queue: BatchQueue<Change>

    init() {
        queue = BatchQueue(maxBatch: 512) { batch in
            let store = batch[0].store
            let outcomes = try await store.transaction { connection in
                try await Self.end(batch, in: store, on: connection)
            }
            store.announcer.changed(outcomes.compactMap { try? $0.get() }, now: batch.map(\.now).max() ?? 0)
            for (change, outcome) in zip(batch, outcomes) { change.reply(outcome) }
        } fail: { change, error in
            change.reply(.failure(error))
        }
    }

    /// Ends the attempts whose lease is still theirs, in the caller's transaction; the others get
    /// `notFound` or `leaseLost`. Outcomes are in the batch's order.
    private static func end(_ batch: [Change], in store: PostgresStore, on connection: PostgresConnection)
        async throws -> [Result<JobChange, any Error>]
    {
        var jobs = try await store.lockedJobs(ids: batch.map(\.id), on: connection)
        var failures: [Int: JobStoreError] = [:]
        var ended: [(index: Int, job: Job)] = []
        for (index, change) in batch.enumerated() {
            guard var job = jobs[change.id] else {
                failures[index] = .notFound
                continue
            }
            guard job.isLeased(by: change.token, now: change.now) else {
                failures[index] = .leaseLost
                continue
            }
            change.apply(&job)
            job.changed(at: change.now)
            jobs[change.id] = job
            ended.append((index, job))
        }
        try await store.update(ended.map(\.job), on: connection)
        let events = try await store.append(ended.map { batch[$0.index].event($0.job) }, on: connection)
        var outcomes: [Result<JobChange, any Error>] = batch.indices.map { .failure(failures[$0] ?? .notFound) }
        for ((index, job), event) in zip(ended, events) {
            outcomes[index] = .success(JobChange(job: job, event: event))
        }
        return outcomes
    }

    /// Ends the attempt of job `id` held with `token`; returns once the change has committed.
    func end(
        id: String,
        token: String,
        in store: PostgresStore,
        now: Int64,
        event: @escaping JobEventRenderer,
        apply: @escaping @Sendable (inout Job) -> Void
    ) async throws -> JobChange {
        try await withCheckedThrowingContinuation { continuation in
            queue.submit(
                Change(store: store, id: id, token: token, now: now, apply: apply, event: event) {
                    continuation.resume(with: $0)
                }
            )
        }
    }
}

extension PostgresStore {
    /// Inserts new jobs (with no unique key) in one statement, in the caller's transaction.
    func insert(_ jobs: [Job], on connection: PostgresConnection) async throws {
        try await connection.query(
            """
            INSERT INTO jobs (id, queue, type, input, state, priority, attempts, max_attempts, timeout_seconds,
                run_at, created_at, updated_at, version)
            SELECT id, queue, type, input, state, priority, 0, max_attempts, timeout_seconds, run_at, created_at,
                created_at, 1
            FROM UNNEST(\(jobs.map(\.id)), \(jobs.map(\.queue)), \(jobs.map(\.type)),
                \(jobs.map { ByteBuffer(data: $0.input) }), \(jobs.map(\.state.rawValue)), \(jobs.map(\.priority)),
                \(jobs.map(\.maxAttempts)), \(jobs.map(\.timeoutSeconds)), \(jobs.map(\.runAt)), \(jobs.map(\.createdAt)))
                AS j(id, queue, type, input, state, priority, max_attempts, timeout_seconds, run_at, created_at)
            """,
            logger: logger
        )
    }
}
