import Foundation
import GRDB

extension SQLiteStore: IdempotencyStore {
    public func claim(
        _ key: IdempotencyKey,
        fingerprint: String,
        owner: String,
        now: Int64,
        expiresAt: Int64
    ) async throws -> IdempotencyClaim {
        try await pool.write { db in
            let existing = try Row.fetchOne(
                db,
                sql: """
                    SELECT fingerprint, owner, status, headers, body FROM idempotency_keys
                    WHERE principal = ? AND key = ? AND expires_at > ?
                    """,
                arguments: [key.principal, key.key, now]
            )
            if let existing {
                guard existing["fingerprint"] == fingerprint else { return .mismatch }
                if let status: Int = existing["status"] {
                    let headers: Data = existing["headers"]
                    return .replay(
                        RecordedResponse(
                            status: status,
                            headers: try JSONDecoder().decode([[String]].self, from: headers),
                            body: existing["body"]
                        )
                    )
                }
                if existing["owner"] == owner {
                    return .inProgress
                }
            }
            try db.execute(
                sql: """
                    INSERT OR REPLACE INTO idempotency_keys (principal, key, fingerprint, owner, started_at, expires_at)
                    VALUES (?, ?, ?, ?, ?, ?)
                    """,
                arguments: [key.principal, key.key, fingerprint, owner, now, expiresAt]
            )
            return .started
        }
    }

    public func record(_ response: RecordedResponse, for key: IdempotencyKey, expiresAt: Int64) async throws {
        let headers = try JSONEncoder().encode(response.headers)
        try await pool.write { db in
            try db.execute(
                sql: """
                    UPDATE idempotency_keys SET status = ?, headers = ?, body = ?, expires_at = ?
                    WHERE principal = ? AND key = ?
                    """,
                arguments: [response.status, headers, response.body, expiresAt, key.principal, key.key]
            )
        }
    }

    public func release(_ key: IdempotencyKey) async throws {
        try await pool.write { db in
            try db.execute(
                sql: "DELETE FROM idempotency_keys WHERE principal = ? AND key = ? AND status IS NULL",
                arguments: [key.principal, key.key]
            )
        }
    }

    public func purgeIdempotencyKeys(now: Int64) async throws -> Int {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM idempotency_keys WHERE expires_at <= ?", arguments: [now])
            return db.changesCount
        }
    }
}
