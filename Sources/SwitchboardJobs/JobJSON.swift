import Foundation
import SwitchboardStore

/// How a job looks in JSON, in API answers and in the state-change events on its topic. Times are
/// milliseconds since 1970.
public struct JobJSON: Codable, Sendable, Equatable {
    public var id: String
    public var queue: String
    public var type: String
    public var state: JobState
    public var input: JSONValue
    public var result: JSONValue?
    public var error: String?
    public var attempts: Int
    public var maxAttempts: Int
    public var priority: Int
    public var timeoutSeconds: Double
    public var runAt: Int64
    public var createdAt: Int64
    public var updatedAt: Int64
    public var uniqueKey: String?
    /// The number of state changes so far; the offset of the latest event on the job's topic.
    public var version: Int64
    /// Only in the answer to a claim: what the worker shows to heartbeat, complete or fail.
    public var lease: LeaseJSON?

    public struct LeaseJSON: Codable, Sendable, Equatable {
        public var token: String
        public var expiresAt: Int64
    }

    /// - Parameter withLease: include the lease token (for the worker that claimed the job only).
    public init(_ job: Job, withLease: Bool = false) {
        id = job.id
        queue = job.queue
        type = job.type
        state = job.state
        input = JSONValue(json: job.input) ?? .null
        result = job.result.flatMap { JSONValue(json: $0) }
        error = job.error
        attempts = job.attempts
        maxAttempts = job.maxAttempts
        priority = job.priority
        timeoutSeconds = job.timeoutSeconds
        runAt = job.runAt
        createdAt = job.createdAt
        updatedAt = job.updatedAt
        uniqueKey = job.uniqueKey
        version = job.version
        if withLease, let token = job.leaseToken, let expiry = job.leaseExpiresAt {
            lease = LeaseJSON(token: token, expiresAt: expiry)
        }
    }

    public var data: Data {
        (try? Self.encoder.encode(self)) ?? Data()
    }

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()
}
