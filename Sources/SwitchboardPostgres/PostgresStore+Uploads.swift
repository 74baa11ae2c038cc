import Foundation
import PostgresNIO
import SwitchboardStore

extension PostgresStore: UploadStore {
    public func newUploadID() -> String {
        UUID.timeOrdered().uuidString.lowercased()
    }

    public func create(_ upload: Upload) async throws {
        try await execute(
            """
            INSERT INTO uploads (id, length, "offset", metadata, concatenation, parts, created_at, expires_at,
                completed_at)
            VALUES (\(upload.id), \(upload.length), \(upload.offset), \(upload.metadata), \(upload.concatenationKind),
                \(upload.parts), \(upload.createdAt), \(upload.expiresAt), \(upload.completedAt))
            """
        )
    }

    public func upload(id: String) async throws -> Upload? {
        try await uploads(where: "id = $1", [id]).first
    }

    public func unfinishedUploads(limit: Int) async throws -> [Upload] {
        try await uploads(where: "completed_at IS NULL ORDER BY id DESC LIMIT $1", [limit])
    }

    /// The uploads a condition on `uploads` selects.
    private func uploads(where condition: String, _ values: [any PostgresDynamicTypeEncodable]) async throws
        -> [Upload]
    {
        var bindings = PostgresBindings(capacity: values.count)
        for value in values { bindings.append(value) }
        let query = PostgresQuery(
            unsafeSQL: """
                SELECT id, length, "offset", metadata, concatenation, parts, created_at, expires_at, completed_at
                FROM uploads WHERE \(condition)
                """,
            binds: bindings
        )
        return try await withConnection { [self] connection in
            var found: [Upload] = []
            for try await (id, length, offset, metadata, kind, parts, createdAt, expiresAt, completedAt)
                in try await connection
                .query(query, logger: logger)
                .decode((String, Int64?, Int64, String, String?, String?, Int64, Int64, Int64?).self)
            {
                found.append(
                    Upload(
                        id: id,
                        length: length,
                        offset: offset,
                        metadata: metadata,
                        concatenation: Upload.concatenation(kind: kind, parts: parts),
                        createdAt: createdAt,
                        expiresAt: expiresAt,
                        completedAt: completedAt
                    )
                )
            }
            return found
        }
    }

    public func save(_ upload: Upload) async throws {
        try await execute(
            """
            UPDATE uploads SET length = \(upload.length), "offset" = \(upload.offset), expires_at = \(upload.expiresAt),
                completed_at = \(upload.completedAt)
            WHERE id = \(upload.id)
            """
        )
    }

    public func deleteUpload(id: String) async throws {
        try await execute("DELETE FROM uploads WHERE id = \(id)")
    }

    public func expiredUploads(now: Int64) async throws -> [String] {
        try await values("SELECT id FROM uploads WHERE completed_at IS NULL AND expires_at <= \(now)", as: String.self)
    }

    public func lockUpload(id: String) async throws -> Bool {
        try await uploadLocks.lock(id)
    }

    public func unlockUpload(id: String) async {
        await uploadLocks.unlock(id)
    }
}
