import Foundation
import GRDB
import SwitchboardStore

extension SQLiteStore: UploadStore {
    public func newUploadID() -> String {
        UUID.timeOrdered().uuidString.lowercased()
    }

    public func create(_ upload: Upload) async throws {
        try await writes.write { db in
            try db.execute(
                sql: """
                    INSERT INTO uploads (id, length, "offset", metadata, concatenation, parts, created_at, expires_at,
                        completed_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    upload.id, upload.length, upload.offset, upload.metadata, upload.concatenationKind,
                    upload.parts, upload.createdAt, upload.expiresAt, upload.completedAt,
                ]
            )
        }
    }

    public func upload(id: String) async throws -> Upload? {
        try await pool.read { db in
            try Row.fetchOne(
                db,
                sql: """
                    SELECT id, length, "offset", metadata, concatenation, parts, created_at, expires_at, completed_at
                    FROM uploads WHERE id = ?
                    """,
                arguments: [id]
            ).map(Upload.init(row:))
        }
    }

    public func save(_ upload: Upload) async throws {
        try await writes.write { db in
            try db.execute(
                sql: """
                    UPDATE uploads SET length = ?, "offset" = ?, expires_at = ?, completed_at = ? WHERE id = ?
                    """,
                arguments: [upload.length, upload.offset, upload.expiresAt, upload.completedAt, upload.id]
            )
        }
    }

    public func deleteUpload(id: String) async throws {
        try await writes.write { db in
            try db.execute(sql: "DELETE FROM uploads WHERE id = ?", arguments: [id])
        }
    }

    public func unfinishedUploads(limit: Int) async throws -> [Upload] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT id, length, "offset", metadata, concatenation, parts, created_at, expires_at, completed_at
                    FROM uploads WHERE completed_at IS NULL ORDER BY id DESC LIMIT ?
                    """,
                arguments: [limit]
            ).map(Upload.init(row:))
        }
    }

    public func expiredUploads(now: Int64) async throws -> [String] {
        try await pool.read { db in
            try String.fetchAll(
                db,
                sql: "SELECT id FROM uploads WHERE completed_at IS NULL AND expires_at <= ?",
                arguments: [now]
            )
        }
    }

    public func lockUpload(id: String) async throws -> Bool {
        uploadLocks.lock(id)
    }

    public func unlockUpload(id: String) async {
        uploadLocks.unlock(id)
    }
}

extension Upload {
    init(row: Row) {
        self.init(
            id: row["id"],
            length: row["length"],
            offset: row["offset"],
            metadata: row["metadata"],
            concatenation: Upload.concatenation(kind: row["concatenation"], parts: row["parts"]),
            createdAt: row["created_at"],
            expiresAt: row["expires_at"],
            completedAt: row["completed_at"]
        )
    }
}
