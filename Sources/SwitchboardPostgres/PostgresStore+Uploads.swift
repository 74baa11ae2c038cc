import Foundation
import PostgresNIO
import SwitchboardStore

extension PostgresStore: UploadStore {
    public func newUploadID() -> String {
        UUID.timeOrdered().uuidString.lowercased()
    }

    public func create(_ upload: Upload) async throws {
        try await client.query(
            """
            INSERT INTO uploads (id, length, "offset", metadata, concatenation, parts, created_at, expires_at,
                completed_at)
            VALUES (\(upload.id), \(upload.length), \(upload.offset), \(upload.metadata), \(upload.concatenationKind),
                \(upload.parts), \(upload.createdAt), \(upload.expiresAt), \(upload.completedAt))
            """,
            logger: logger
        )
    }

    public func upload(id: String) async throws -> Upload? {
        let rows = try await client.query(
            """
            SELECT length, "offset", metadata, concatenation, parts, created_at, expires_at, completed_at
            FROM uploads WHERE id = \(id)
            """,
            logger: logger
        )
        for try await (length, offset, metadata, kind, parts, createdAt, expiresAt, completedAt) in rows.decode(
            (Int64?, Int64, String, String?, String?, Int64, Int64, Int64?).self
        ) {
            return Upload(
                id: id,
                length: length,
                offset: offset,
                metadata: metadata,
                concatenation: Upload.concatenation(kind: kind, parts: parts),
                createdAt: createdAt,
                expiresAt: expiresAt,
                completedAt: completedAt
            )
        }
        return nil
    }

    public func save(_ upload: Upload) async throws {
        try await client.query(
            """
            UPDATE uploads SET length = \(upload.length), "offset" = \(upload.offset), expires_at = \(upload.expiresAt),
                completed_at = \(upload.completedAt)
            WHERE id = \(upload.id)
            """,
            logger: logger
        )
    }

    public func deleteUpload(id: String) async throws {
        try await client.query("DELETE FROM uploads WHERE id = \(id)", logger: logger)
    }

    public func expiredUploads(now: Int64) async throws -> [String] {
        var ids: [String] = []
        for try await id in try await client.query(
            "SELECT id FROM uploads WHERE completed_at IS NULL AND expires_at <= \(now)",
            logger: logger
        ).decode(String.self) {
            ids.append(id)
        }
        return ids
    }

    public func lockUpload(id: String) async throws -> Bool {
        try await uploadLocks.lock(id)
    }

    public func unlockUpload(id: String) async {
        await uploadLocks.unlock(id)
    }
}
