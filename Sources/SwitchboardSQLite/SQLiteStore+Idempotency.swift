import Foundation
import GRDB
import SwitchboardStore

extension SQLiteStore: IdempotencyStore {
    public func claim(
        _ key: IdempotencyKey,
        fingerprint: String,
        owner: String,
        now: Int64,
        expiresAt: Int64
    ) async throws -> IdempotencyClaim {
        try await writes.write { db in
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
                let holder: String = existing["owner"]
                // A response recorded with the effect while its request still runs is provisional: it is
                // replayed only once the request has finished, or its process has died.
                if let status: Int = existing["status"], holder != owner {
                    let headers: Data = existing["headers"]
                    return .replay(
                        RecordedResponse(
                            status: status,
                            headers: try JSONDecoder().decode([[String]].self, from: headers),
                            body: existing["body"]
                        )
                    )
                }
                if holder == owner {
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
        try await writes.write { db in
            try Self.record(response, for: key, expiresAt: expiresAt, final: true, in: db)
        }
    }

    /// Writes the receipt's provisional record inside the caller's transaction, the one that commits
    /// `effect`.
    static func record<Effect>(_ receipt: IdempotencyReceipt<Effect>?, of effect: Effect, in db: Database) throws {
        guard let receipt else { return }
        try record(receipt.render(effect), for: receipt.key, expiresAt: receipt.expiresAt, final: false, in: db)
    }

    /// A final record has no owner any more: every claim replays it.
    private static func record(
        _ response: RecordedResponse,
        for key: IdempotencyKey,
        expiresAt: Int64,
        final: Bool,
        in db: Database
    ) throws {
        try db.execute(
            sql: """
                UPDATE idempotency_keys SET status = ?, headers = ?, body = ?, expires_at = ?,
                    owner = CASE WHEN ? THEN '' ELSE owner END
                WHERE principal = ? AND key = ?
                """,
            arguments: [
                response.status, try JSONEncoder().encode(response.headers), response.body, expiresAt, final,
                key.principal, key.key,
            ]
        )
    }

    public func release(_ key: IdempotencyKey) async throws {
        try await writes.write { db in
            try db.execute(
                sql: "DELETE FROM idempotency_keys WHERE principal = ? AND key = ? AND status IS NULL",
                arguments: [key.principal, key.key]
            )
        }
    }

    public func purgeIdempotencyKeys(now: Int64) async throws -> Int {
        try await writes.write { db in
            try db.execute(sql: "DELETE FROM idempotency_keys WHERE expires_at <= ?", arguments: [now])
            return db.changesCount
        }
    }
}
