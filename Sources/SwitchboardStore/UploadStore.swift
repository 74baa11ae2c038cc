import Foundation

/// A resumable upload (tus) as the store keeps it; its bytes live in a file of its own. Times are
/// milliseconds since 1970.
public struct Upload: Sendable, Equatable {
    /// How an upload takes part in concatenation.
    public enum Concatenation: Sendable, Equatable {
        /// A piece meant to be concatenated; not announced on its own.
        case partial
        /// The concatenation of these uploads, in order.
        case final([String])
    }

    public var id: String
    /// The total size; `nil` while deferred.
    public var length: Int64?
    /// The bytes received so far.
    public var offset: Int64
    /// The `Upload-Metadata` header as the client sent it.
    public var metadata: String
    public var concatenation: Concatenation?
    public var createdAt: Int64
    /// An unfinished upload is removed after this time.
    public var expiresAt: Int64
    public var completedAt: Int64?

    public init(
        id: String,
        length: Int64?,
        offset: Int64 = 0,
        metadata: String,
        concatenation: Concatenation? = nil,
        createdAt: Int64,
        expiresAt: Int64,
        completedAt: Int64? = nil
    ) {
        self.id = id
        self.length = length
        self.offset = offset
        self.metadata = metadata
        self.concatenation = concatenation
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.completedAt = completedAt
    }

    public var isComplete: Bool { completedAt != nil }
}

/// The records of resumable uploads.
public protocol UploadStore: Sendable {
    /// A new id for an upload, ordered by creation time.
    func newUploadID() -> String
    func create(_ upload: Upload) async throws
    func upload(id: String) async throws -> Upload?
    /// Saves the progress (offset, length once known, completion, expiry) of an upload.
    func save(_ upload: Upload) async throws
    func deleteUpload(id: String) async throws
    /// Up to `limit` unfinished uploads, newest first.
    func unfinishedUploads(limit: Int) async throws -> [Upload]
    /// Unfinished uploads whose time ran out.
    func expiredUploads(now: Int64) async throws -> [String]
    /// Takes the write lock of an upload; `false` when another request holds it, on this node or on
    /// another that shares the store. The lock ends with `unlockUpload` or with this process.
    func lockUpload(id: String) async throws -> Bool
    func unlockUpload(id: String) async
}
