import Foundation
import NIOCore
import PostgresNIO
import SwitchboardStore

extension PostgresStore: IdempotencyStore {
    /// The key's row is the lock: the first insert wins, and every other claim reads the row under
    /// `FOR UPDATE`. A claim held by a node that is alive is in progress; one held by a node silent for
    /// longer than `nodeTimeout` is taken over (or its provisional response replayed).
    public func claim(
        _ key: IdempotencyKey,
        fingerprint: String,
        owner: String,
        now: Int64,
        expiresAt: Int64
    ) async throws -> IdempotencyClaim {
        try await transaction { [self] connection in
            var inserted = false
            for try await _ in try await connection.query(
                """
                INSERT INTO idempotency_keys (principal, key, fingerprint, owner, started_at, expires_at)
                VALUES (\(key.principal), \(key.key), \(fingerprint), \(owner), \(now), \(expiresAt))
                ON CONFLICT (principal, key) DO NOTHING RETURNING 1
                """,
                logger: logger
            ) {
                inserted = true
            }
            if inserted { return .started }
            let rows = try await connection.query(
                """
                SELECT k.fingerprint, k.owner, k.expires_at, k.status, k.headers, k.body, n.seen_at
                FROM idempotency_keys k LEFT JOIN nodes n ON n.id = k.owner
                WHERE k.principal = \(key.principal) AND k.key = \(key.key) FOR UPDATE OF k
                """,
                logger: logger
            )
            for try await (recorded, holder, expiry, status, headers, body, seenAt) in rows.decode(
                (String, String, Int64, Int?, ByteBuffer?, ByteBuffer?, Int64?).self
            ) where expiry > now {
                guard recorded == fingerprint else { return .mismatch }
                let holderAlive = holder == owner || seenAt.map { $0 > now - Self.nodeTimeout } ?? false
                // A final record has no holder: it is replayed to everyone. A provisional one (the effect
                // committed, the request still running) only once its holder has died.
                if let status, holder.isEmpty || !holderAlive {
                    return .replay(
                        RecordedResponse(
                            status: status,
                            headers: try JSONDecoder().decode([[String]].self, from: Data(buffer: headers ?? .init())),
                            body: Data(buffer: body ?? .init())
                        )
                    )
                }
                if holderAlive { return .inProgress }
            }
            // Taken over (or claimed afresh, should a release or a purge have removed the row meanwhile).
            try await connection.query(
                """
                INSERT INTO idempotency_keys (principal, key, fingerprint, owner, started_at, expires_at)
                VALUES (\(key.principal), \(key.key), \(fingerprint), \(owner), \(now), \(expiresAt))
                ON CONFLICT (principal, key) DO UPDATE SET fingerprint = excluded.fingerprint, owner = excluded.owner,
                    started_at = excluded.started_at, expires_at = excluded.expires_at, status = NULL, headers = NULL,
                    body = NULL
                """,
                logger: logger
            )
            return .started
        }
    }

    public func record(_ response: RecordedResponse, for key: IdempotencyKey, expiresAt: Int64) async throws {
        try await withConnection { [self] connection in
            try await record(response, for: key, expiresAt: expiresAt, final: true, on: connection)
        }
    }

    /// Writes the receipt's provisional record inside the caller's transaction, the one that commits
    /// `effect`.
    func record<Effect>(_ receipt: IdempotencyReceipt<Effect>?, of effect: Effect, on connection: PostgresConnection)
        async throws
    {
        guard let receipt else { return }
        try await record(
            receipt.render(effect),
            for: receipt.key,
            expiresAt: receipt.expiresAt,
            final: false,
            on: connection
        )
    }

    /// A final record has no owner any more: every claim replays it.
    private func record(
        _ response: RecordedResponse,
        for key: IdempotencyKey,
        expiresAt: Int64,
        final: Bool,
        on connection: PostgresConnection
    ) async throws {
        let headers = ByteBuffer(data: try JSONEncoder().encode(response.headers))
        try await connection.query(
            """
            UPDATE idempotency_keys SET status = \(response.status), headers = \(headers),
                body = \(ByteBuffer(data: response.body)), expires_at = \(expiresAt),
                owner = CASE WHEN \(final) THEN '' ELSE owner END
            WHERE principal = \(key.principal) AND key = \(key.key)
            """,
            logger: logger
        )
    }

    public func release(_ key: IdempotencyKey) async throws {
        try await execute(
            "DELETE FROM idempotency_keys WHERE principal = \(key.principal) AND key = \(key.key) AND status IS NULL"
        )
    }

    public func purgeIdempotencyKeys(now: Int64) async throws -> Int {
        try await count(
            "WITH gone AS (DELETE FROM idempotency_keys WHERE expires_at <= \(now) RETURNING 1) SELECT COUNT(*) FROM gone"
        )
    }
}
