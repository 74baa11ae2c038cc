import Foundation

/// Where a job is in its life. `queued` and `running` are live; the rest are final.
public enum JobState: String, Sendable, Codable, CaseIterable {
    /// Waiting to be claimed (possibly not before its `runAt`, or before a retry's backoff ends).
    case queued
    /// Claimed by a worker that holds its lease.
    case running
    case succeeded
    /// Failed with an error its worker said is not worth retrying.
    case failed
    /// Failed on every one of its `maxAttempts` (the dead-letter state); can be requeued.
    case dead
    case cancelled

    public var isFinal: Bool { self != .queued && self != .running }
}

/// A job to submit.
public struct NewJob: Sendable {
    public var queue: String
    public var type: String
    /// The job's input as JSON text.
    public var input: Data
    public var maxAttempts: Int
    /// How long one attempt may run.
    public var timeoutSeconds: Double
    /// Higher runs first.
    public var priority: Int
    /// Not claimed before this time (milliseconds since 1970); `nil` is now.
    public var runAt: Int64?
    /// Another job of the same queue with this key, submitted within `uniqueForSeconds`, is returned
    /// instead of a new one.
    public var uniqueKey: String?
    public var uniqueForSeconds: Int64

    public init(
        queue: String,
        type: String,
        input: Data,
        maxAttempts: Int = 3,
        timeoutSeconds: Double = 60,
        priority: Int = 0,
        runAt: Int64? = nil,
        uniqueKey: String? = nil,
        uniqueForSeconds: Int64 = 3600
    ) {
        self.queue = queue
        self.type = type
        self.input = input
        self.maxAttempts = maxAttempts
        self.timeoutSeconds = timeoutSeconds
        self.priority = priority
        self.runAt = runAt
        self.uniqueKey = uniqueKey
        self.uniqueForSeconds = uniqueForSeconds
    }
}

/// A job as the store holds it. Times are milliseconds since 1970.
public struct Job: Sendable, Equatable {
    public var id: String
    public var queue: String
    public var type: String
    public var input: Data
    public var state: JobState
    public var priority: Int
    /// Attempts started so far (a claim starts one).
    public var attempts: Int
    public var maxAttempts: Int
    public var timeoutSeconds: Double
    public var runAt: Int64
    public var createdAt: Int64
    public var updatedAt: Int64
    /// The result of a successful attempt, as JSON text.
    public var result: Data?
    /// The error of the last failed attempt.
    public var error: String?
    public var uniqueKey: String?
    /// The secret a worker shows to heartbeat, complete or fail the attempt it holds.
    public var leaseToken: String?
    public var leaseExpiresAt: Int64?
    /// How many state changes the job has had; each is an event on its topic.
    public var version: Int64

    package init(
        id: String,
        queue: String,
        type: String,
        input: Data,
        state: JobState,
        priority: Int,
        attempts: Int,
        maxAttempts: Int,
        timeoutSeconds: Double,
        runAt: Int64,
        createdAt: Int64,
        updatedAt: Int64,
        result: Data?,
        error: String?,
        uniqueKey: String?,
        leaseToken: String?,
        leaseExpiresAt: Int64?,
        version: Int64
    ) {
        self.id = id
        self.queue = queue
        self.type = type
        self.input = input
        self.state = state
        self.priority = priority
        self.attempts = attempts
        self.maxAttempts = maxAttempts
        self.timeoutSeconds = timeoutSeconds
        self.runAt = runAt
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.result = result
        self.error = error
        self.uniqueKey = uniqueKey
        self.leaseToken = leaseToken
        self.leaseExpiresAt = leaseExpiresAt
        self.version = version
    }
}

/// A state change: the job after it, and the event that announced it on the job's topic, appended in the
/// same transaction.
public struct JobChange: Sendable {
    public var job: Job
    /// `nil` when nothing changed (a unique job that already existed).
    public var event: StoredMessage?

    public init(job: Job, event: StoredMessage?) {
        self.job = job
        self.event = event
    }
}

/// Why a job operation was refused.
public enum JobStoreError: Error, Equatable {
    case notFound
    /// The attempt's lease expired or went to another worker: the caller no longer holds the job.
    case leaseLost
    /// The operation does not apply in the job's current state.
    case wrongState(JobState)
}

/// Renders the event that announces a job's new state on its topic.
public typealias JobEventRenderer = @Sendable (Job) -> NewMessage

/// How a failed attempt continues: given the attempts made, the delay in milliseconds before the next,
/// or `nil` when the failure is final.
public typealias RetryPolicy = @Sendable (_ attempts: Int) -> Int64?

/// The queue behind jobs: each state change is a transaction that also appends the change's event to the
/// job's topic, so the announcements can never disagree with the state.
public protocol JobStore: Sendable {
    /// Adds a job (or returns the live unique job with the same key), with its idempotency record.
    func submit(_ job: NewJob, now: Int64, event: @escaping JobEventRenderer, receipt: IdempotencyReceipt<JobChange>?)
        async throws -> JobChange
    func job(id: String) async throws -> Job?
    /// Jobs, newest first, optionally of one queue and state.
    func jobs(queue: String?, state: JobState?, limit: Int) async throws -> [Job]
    /// How many jobs each queue holds in each state (states with none left out).
    func queueCounts() async throws -> [String: [JobState: Int]]
    /// Leases up to `limit` due jobs of `queue`, highest priority first, to one worker.
    func claim(queue: String, limit: Int, leaseMilliseconds: Int64, now: Int64, event: @escaping JobEventRenderer)
        async throws -> [JobChange]
    /// Extends the lease of a running job whose `token` is current.
    func heartbeat(id: String, token: String, leaseMilliseconds: Int64, now: Int64) async throws -> Job
    func complete(id: String, token: String, result: Data, now: Int64, event: @escaping JobEventRenderer)
        async throws -> JobChange
    /// Records a failed attempt: `failed` when the policy gives no delay, else queued again after the
    /// delay while attempts remain, else `dead`.
    func fail(
        id: String,
        token: String,
        error: String,
        retry: @escaping RetryPolicy,
        now: Int64,
        event: @escaping JobEventRenderer
    )
        async throws -> JobChange
    /// Cancels a queued or running job.
    func cancel(id: String, now: Int64, event: @escaping JobEventRenderer) async throws -> JobChange
    /// Puts a dead, failed or cancelled job back in its queue with fresh attempts.
    func requeue(id: String, now: Int64, event: @escaping JobEventRenderer) async throws -> JobChange
    /// Returns running jobs whose lease has expired to their queue (or to `dead` when out of attempts).
    func expireLeases(now: Int64, event: @escaping JobEventRenderer) async throws -> [JobChange]
    /// When the earliest queued job of `queue` becomes due; `nil` when none is queued.
    func nextDue(queue: String) async throws -> Int64?
    /// Deletes up to `limit` jobs that finished before `before`, with their topics; returns how many.
    func deleteFinishedJobs(before: Int64, limit: Int) async throws -> Int
}
