import Foundation

/// An `Idempotency-Key` as the store keeps it: per principal (the authenticated caller, or `anonymous`).
public struct IdempotencyKey: Sendable, Hashable {
    public var principal: String
    public var key: String

    public init(principal: String, key: String) {
        self.principal = principal
        self.key = key
    }
}

/// The response a first request got, kept to be replayed to its retries.
public struct RecordedResponse: Sendable, Equatable {
    public var status: Int
    public var headers: [[String]]
    public var body: Data

    /// - Parameter headers: name and value pairs, in order.
    public init(status: Int, headers: [[String]], body: Data) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

/// The record of a request's response, to be written in the same transaction as the request's effect,
/// so that a crash can never leave the effect without its record. It is provisional until the request
/// records its final response: retries are told the request is still running until then, and get this
/// response if its process dies first.
public struct IdempotencyReceipt<Effect>: Sendable {
    public var key: IdempotencyKey
    public var expiresAt: Int64
    /// The response, from the effect as committed.
    public var render: @Sendable (Effect) -> RecordedResponse

    public init(key: IdempotencyKey, expiresAt: Int64, render: @escaping @Sendable (Effect) -> RecordedResponse) {
        self.key = key
        self.expiresAt = expiresAt
        self.render = render
    }
}

/// What a request carrying an idempotency key should do.
public enum IdempotencyClaim: Sendable, Equatable {
    /// The key is new (or its first holder died): run the request, then record its response.
    case started
    /// The same request already ran: answer with its response.
    case replay(RecordedResponse)
    /// The same request is still running.
    case inProgress
    /// The key was used with a different request.
    case mismatch
}

/// The records behind `Idempotency-Key`.
public protocol IdempotencyStore: Sendable {
    /// The owner this process claims keys as. A claim of another owner counts as running while that
    /// owner's process lives; once it has died, the claim is taken over.
    var processOwner: String { get }
    /// Claims `key` for a request with `fingerprint` on behalf of `owner` (one process run). A claim left
    /// running by another owner — a process that died mid-request — is taken over.
    func claim(_ key: IdempotencyKey, fingerprint: String, owner: String, now: Int64, expiresAt: Int64)
        async throws -> IdempotencyClaim
    /// Records the final response of the request that holds `key`.
    func record(_ response: RecordedResponse, for key: IdempotencyKey, expiresAt: Int64) async throws
    /// Drops a claim whose request ended without a response worth replaying, so a retry runs again.
    func release(_ key: IdempotencyKey) async throws
    /// Deletes records that have expired; returns how many.
    func purgeIdempotencyKeys(now: Int64) async throws -> Int
}
