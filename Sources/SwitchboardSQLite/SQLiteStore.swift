import Foundation
import GRDB
import ServiceLifecycle
import SwitchboardStore

/// The embedded store: one SQLite file in WAL mode under the data directory, through GRDB.
public final class SQLiteStore: Store {
    public let kind = "sqlite"
    /// The database file.
    public let path: String
    let pool: DatabasePool
    /// Group commit for the small writes (jobs, idempotency keys, uploads, todos).
    let writes: WriteBatcher
    /// One process uses the file, so a claim of any other owner was left by a process that died.
    public let processOwner = UUID().uuidString
    let uploadLocks = UploadLocks()

    /// How hard a commit works to survive a crash.
    public enum Durability: String, Sendable {
        /// A committed transaction survives the process being killed (`kill -9`): WAL with
        /// `synchronous=NORMAL`, one disk sync per checkpoint rather than per commit.
        case process
        /// A committed transaction also survives power loss: `synchronous=FULL`, a sync per commit.
        case power
    }

    /// Opens (creating if needed) `switchboard.sqlite` in `directory` and brings its schema up to date.
    public init(directory: String, durability: Durability = .process) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        path = (directory as NSString).appendingPathComponent("switchboard.sqlite")
        var configuration = Configuration()
        configuration.label = "switchboard"
        configuration.busyMode = .timeout(5)
        let synchronous = durability == .power ? "FULL" : "NORMAL"
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = \(synchronous)")
        }
        pool = try DatabasePool(path: path, configuration: configuration)
        writes = WriteBatcher(pool: pool)
        try Self.migrator.migrate(pool)
    }

    /// The journal mode SQLite reports, `wal` for a pool.
    public func journalMode() async throws -> String {
        try await pool.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "" }
    }

    public func ping() async throws {
        _ = try await pool.read { db in try Int.fetchOne(db, sql: "SELECT 1") }
    }

    /// Waits for graceful shutdown, then closes the database.
    public func run() async throws {
        try? await gracefulShutdown()
        try close()
    }

    /// Closes the database; later queries fail. Closing twice is harmless.
    public func close() throws {
        try pool.close()
    }

    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: node metadata") { db in
            try db.create(table: "node_metadata") { table in
                table.primaryKey("key", .text)
                table.column("value", .text).notNull()
            }
            try db.execute(
                sql: "INSERT INTO node_metadata (key, value) VALUES ('created_at', ?)",
                arguments: [ISO8601DateFormatter().string(from: Date())]
            )
        }
        migrator.registerMigration("v2: topics") { db in
            try db.create(table: "topics") { table in
                table.primaryKey("name", .text)
                table.column("next_offset", .integer).notNull()
            }
            try db.create(table: "topic_messages", options: .withoutRowID) { table in
                table.column("topic", .text).notNull()
                table.column("offset", .integer).notNull()
                table.column("id", .text).notNull()
                table.column("published_at", .integer).notNull()
                table.column("content_type", .text)
                table.column("body", .blob).notNull()
                table.primaryKey(["topic", "offset"])
            }
            try db.create(table: "consumer_groups", options: .withoutRowID) { table in
                table.column("topic", .text).notNull()
                table.column("name", .text).notNull()
                table.column("committed_offset", .integer).notNull()
                table.primaryKey(["topic", "name"])
            }
        }
        migrator.registerMigration("v3: jobs and idempotency keys") { db in
            try db.create(table: "jobs") { table in
                table.primaryKey("id", .text)
                table.column("queue", .text).notNull()
                table.column("type", .text).notNull()
                table.column("input", .blob).notNull()
                table.column("state", .text).notNull()
                table.column("priority", .integer).notNull()
                table.column("attempts", .integer).notNull()
                table.column("max_attempts", .integer).notNull()
                table.column("timeout_seconds", .double).notNull()
                table.column("run_at", .integer).notNull()
                table.column("created_at", .integer).notNull()
                table.column("updated_at", .integer).notNull()
                table.column("result", .blob)
                table.column("error", .text)
                table.column("unique_key", .text)
                table.column("lease_token", .text)
                table.column("lease_expires_at", .integer)
                table.column("version", .integer).notNull()
            }
            try db.execute(sql: "CREATE INDEX jobs_due ON jobs (queue, state, priority DESC, run_at)")
            try db.execute(sql: "CREATE INDEX jobs_leases ON jobs (state, lease_expires_at)")
            try db.execute(sql: "CREATE INDEX jobs_unique ON jobs (queue, unique_key) WHERE unique_key IS NOT NULL")
            try db.execute(sql: "CREATE INDEX jobs_created ON jobs (created_at)")
            try db.create(table: "idempotency_keys", options: .withoutRowID) { table in
                table.column("principal", .text).notNull()
                table.column("key", .text).notNull()
                table.column("fingerprint", .text).notNull()
                table.column("owner", .text).notNull()
                table.column("started_at", .integer).notNull()
                table.column("expires_at", .integer).notNull()
                table.column("status", .integer)
                table.column("headers", .blob)
                table.column("body", .blob)
                table.primaryKey(["principal", "key"])
            }
        }
        migrator.registerMigration("v4: uploads") { db in
            try db.create(table: "uploads") { table in
                table.primaryKey("id", .text)
                table.column("length", .integer)
                table.column("offset", .integer).notNull()
                table.column("metadata", .text).notNull()
                table.column("concatenation", .text)
                table.column("parts", .text)
                table.column("created_at", .integer).notNull()
                table.column("expires_at", .integer).notNull()
                table.column("completed_at", .integer)
            }
            try db.execute(sql: "CREATE INDEX uploads_unfinished ON uploads (expires_at) WHERE completed_at IS NULL")
        }
        migrator.registerMigration("v5: todos") { db in
            // AUTOINCREMENT: ids are never reused, so they stay dense from 1 as items are only appended.
            try db.create(table: "todos") { table in
                table.autoIncrementedPrimaryKey("id")
                table.column("text", .text).notNull()
            }
        }
        return migrator
    }
}

extension SQLiteStore {
    /// Runs a statement directly, outside the store's operations (for tests and maintenance).
    package func execute(unsafeSQL sql: String) async throws {
        try await pool.write { db in try db.execute(sql: sql) }
    }
}
