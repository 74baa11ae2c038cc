import Foundation
import Logging
import PostgresNIO

/// The schema, as numbered migrations. A node applies the ones the database lacks at start, holding an
/// advisory lock so that nodes starting together apply each exactly once.
enum PostgresSchema {
    /// The advisory lock key of migrations (any number no other lock of the schema uses).
    private static let migrationLock: Int64 = 0x5357_4D49_4752  // "SWMIGR"

    static let migrations: [(version: Int, sql: [PostgresQuery])] = [
        (
            1,
            [
                "CREATE TABLE nodes (id text PRIMARY KEY, seen_at bigint NOT NULL)",
                "CREATE TABLE topics (name text PRIMARY KEY, next_offset bigint NOT NULL)",
                """
                CREATE TABLE topic_messages (
                    topic text NOT NULL, "offset" bigint NOT NULL, id text NOT NULL, published_at bigint NOT NULL,
                    content_type text, body bytea NOT NULL, PRIMARY KEY (topic, "offset"))
                """,
                """
                CREATE TABLE consumer_groups (
                    topic text NOT NULL, name text NOT NULL, committed_offset bigint NOT NULL,
                    PRIMARY KEY (topic, name))
                """,
                """
                CREATE TABLE jobs (
                    id text PRIMARY KEY, queue text NOT NULL, type text NOT NULL, input bytea NOT NULL,
                    state text NOT NULL, priority integer NOT NULL, attempts integer NOT NULL,
                    max_attempts integer NOT NULL, timeout_seconds double precision NOT NULL, run_at bigint NOT NULL,
                    created_at bigint NOT NULL, updated_at bigint NOT NULL, result bytea, error text, unique_key text,
                    lease_token text, lease_expires_at bigint, version bigint NOT NULL)
                """,
                "CREATE INDEX jobs_due ON jobs (queue, priority DESC, run_at) WHERE state = 'queued'",
                "CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE state = 'running'",
                "CREATE INDEX jobs_unique ON jobs (queue, unique_key) WHERE unique_key IS NOT NULL",
                "CREATE INDEX jobs_updated ON jobs (updated_at)",
                "CREATE INDEX jobs_created ON jobs (created_at)",
                """
                CREATE TABLE idempotency_keys (
                    principal text NOT NULL, key text NOT NULL, fingerprint text NOT NULL, owner text NOT NULL,
                    started_at bigint NOT NULL, expires_at bigint NOT NULL, status integer, headers bytea, body bytea,
                    PRIMARY KEY (principal, key))
                """,
                """
                CREATE TABLE uploads (
                    id text PRIMARY KEY, length bigint, "offset" bigint NOT NULL, metadata text NOT NULL,
                    concatenation text, parts text, created_at bigint NOT NULL, expires_at bigint NOT NULL,
                    completed_at bigint)
                """,
                "CREATE INDEX uploads_unfinished ON uploads (expires_at) WHERE completed_at IS NULL",
                "CREATE TABLE todos (id integer PRIMARY KEY, text text NOT NULL)",
            ]
        )
    ]

    /// Applies the migrations the database lacks, in order, in one transaction on a connection of its own
    /// (before the pool runs).
    static func migrate(_ configuration: PostgresConnection.Configuration, logger: Logger) async throws {
        let connection = try await PostgresConnection.connect(
            on: PostgresClient.defaultEventLoopGroup.next(),
            configuration: configuration,
            id: 2,
            logger: logger
        ).get()
        do {
            try await apply(on: connection, logger: logger)
            try await connection.close()
        } catch {
            try? await connection.close()
            throw error
        }
    }

    private static func apply(on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.withTransaction(logger: logger) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(migrationLock))", logger: logger)
            try await connection.query(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied_at bigint NOT NULL)",
                logger: logger
            )
            var applied = 0
            for try await version in try await connection.query(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                logger: logger
            ).decode(Int.self) {
                applied = version
            }
            for migration in migrations where migration.version > applied {
                for statement in migration.sql {
                    try await connection.query(statement, logger: logger)
                }
                let now = Date().millisecondsSince1970
                try await connection.query(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (\(migration.version), \(now))",
                    logger: logger
                )
                logger.info("Store migrated", metadata: ["version": "\(migration.version)"])
            }
        }
    }
}
