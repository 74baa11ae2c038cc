import Foundation

/// The rules of a job's life that do not depend on the database: what a submission creates, who holds
/// a lease, where a failed attempt goes and what a state change resets. Every backend applies them in
/// its own transactions.
extension Job {
    /// The queued job a submission creates.
    package init(submitted new: NewJob, now: Int64) {
        self.init(
            id: UUID.timeOrdered().uuidString.lowercased(),
            queue: new.queue,
            type: new.type,
            input: new.input,
            state: .queued,
            priority: new.priority,
            attempts: 0,
            maxAttempts: new.maxAttempts,
            timeoutSeconds: new.timeoutSeconds,
            runAt: new.runAt ?? now,
            createdAt: now,
            updatedAt: now,
            result: nil,
            error: nil,
            uniqueKey: new.uniqueKey,
            leaseToken: nil,
            leaseExpiresAt: nil,
            version: 1
        )
    }

    /// Whether `token` is the current, unexpired lease of this running job.
    package func isLeased(by token: String, now: Int64) -> Bool {
        guard state == .running, leaseToken == token, let expiry = leaseExpiresAt else { return false }
        return expiry > now
    }

    /// Starts an attempt under a new lease.
    package mutating func lease(for milliseconds: Int64, now: Int64) {
        state = .running
        attempts += 1
        leaseToken = UUID().uuidString.lowercased()
        leaseExpiresAt = now + milliseconds
    }

    /// After a failed attempt: `failed` when not to be retried, else queued again after the retry delay
    /// while attempts remain, else `dead`.
    package mutating func endAttempt(retry: RetryPolicy, now: Int64) {
        guard let delay = retry(attempts) else {
            state = .failed
            return
        }
        if attempts >= maxAttempts {
            state = .dead
        } else {
            state = .queued
            runAt = now + delay
        }
    }

    /// Marks a state change: a new version, the time, and no lease unless running.
    package mutating func changed(at now: Int64) {
        version += 1
        updatedAt = now
        if state != .running {
            leaseToken = nil
            leaseExpiresAt = nil
        }
    }

    /// The earliest creation time a unique job may have to be returned for `new`.
    package static func uniquenessWindowStart(for new: NewJob, now: Int64) -> Int64 {
        now - min(new.uniqueForSeconds, Int64.max / 1000) * 1000
    }

    /// The error an expired lease leaves on its job.
    package var leaseExpiredError: String {
        "The lease expired before the worker finished (attempt \(attempts))"
    }

    /// The states of jobs that are done and may be deleted after retention.
    package static let finishedStates = ["succeeded", "failed", "dead", "cancelled"]
}

/// A `jobs` row whose state is not one of `JobState`'s.
public struct CorruptJobRow: Error, CustomStringConvertible {
    public var id: String
    public var state: String

    public init(id: String, state: String) {
        self.id = id
        self.state = state
    }

    public var description: String { "job \(id) has the unknown state '\(state)'" }

    /// The known state named `state`, or this error for job `id`.
    package static func state(_ state: String, of id: String) throws -> JobState {
        guard let known = JobState(rawValue: state) else { throw CorruptJobRow(id: id, state: state) }
        return known
    }
}

extension Upload {
    /// How the upload takes part in concatenation, as stored: `partial`, `final` or none.
    package var concatenationKind: String? {
        switch concatenation {
        case .partial: "partial"
        case .final: "final"
        case nil: nil
        }
    }

    /// The parts of a final upload, as stored: ids separated by spaces.
    package var parts: String? {
        if case .final(let ids) = concatenation { ids.joined(separator: " ") } else { nil }
    }

    /// The concatenation stored as `kind` and `parts`.
    package static func concatenation(kind: String?, parts: String?) -> Concatenation? {
        switch kind {
        case "partial": .partial
        case "final": .final(parts?.split(separator: " ").map(String.init) ?? [])
        default: nil
        }
    }
}
