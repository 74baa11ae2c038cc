import Foundation
import Logging
import NIOCore
import NIOSSL
import PostgresNIO
import ServiceLifecycle
import SwitchboardStore

/// The shared store: PostgreSQL, through a pool of postgres-nio connections, for any number of nodes.
///
/// Nodes hold nothing that decides correctness: offsets are allocated in the committing transaction,
/// jobs are claimed with `FOR UPDATE SKIP LOCKED`, idempotency keys are rows, upload locks are advisory
/// locks. After each commit a node announces it with `NOTIFY`; the others hear it as `remoteChanges`.
/// Every node registers itself in `nodes` and renews that row every `heartbeat`, so that what a dead
/// node held (idempotency claims) is taken over once it has been silent for `nodeTimeout`.
public final class PostgresStore: SharedStore {
    public let kind = "postgres"
    /// This node among those sharing the database.
    public let processOwner = UUID().uuidString.lowercased()
    public let remoteChanges: AsyncStream<RemoteChange>

    let client: PostgresClient
    let logger: Logger
    private let connection: PostgresConnection.Configuration
    private let clientTask: Task<Void, Never>
    private let changes: AsyncStream<RemoteChange>.Continuation
    let uploadLocks: UploadSessionLocks

    /// How often this node renews its row in `nodes`.
    static let heartbeat = Duration.seconds(2)
    /// How long a node may be silent before what it held is taken over.
    static let nodeTimeout: Int64 = 10_000
    /// The channel every node notifies and listens on.
    static let channel = "switchboard"

    /// Connects to the database at `url` (`postgres://USER:PASSWORD@HOST:PORT/DATABASE`, with
    /// `?sslmode=disable|prefer|require`), brings the schema up to date and registers this node.
    public init(url: String, maxConnections: Int = 20, logger: Logger) async throws {
        let target = try PostgresURL(url)
        var configuration = PostgresClient.Configuration(
            host: target.host,
            port: target.port,
            username: target.user,
            password: target.password,
            database: target.database,
            tls: target.tls
        )
        configuration.options.maximumConnections = maxConnections
        configuration.options.connectTimeout = .seconds(3)
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.client = client
        self.logger = logger
        self.connection = PostgresConnection.Configuration(
            host: target.host,
            port: target.port,
            username: target.user,
            password: target.password,
            database: target.database,
            tls: try target.connectionTLS()
        )
        self.clientTask = Task { await client.run() }
        (remoteChanges, changes) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(100_000))
        uploadLocks = UploadSessionLocks(configuration: connection, logger: logger)
        do {
            try await PostgresSchema.migrate(client, logger: logger)
            try await beat()
        } catch {
            clientTask.cancel()
            throw error
        }
    }

    public func ping() async throws {
        try await client.query("SELECT 1", logger: logger)
    }

    /// Renews this node's heartbeat and listens for the other nodes' commits until graceful shutdown;
    /// then leaves the cluster and closes the connections.
    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.listen() }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: Self.heartbeat)
                    do { try await self.beat() } catch {
                        self.logger.warning("Node heartbeat failed", metadata: ["error": "\(error)"])
                    }
                }
            }
            try? await gracefulShutdown()
            group.cancelAll()
        }
        await close()
    }

    /// Leaves the cluster and closes the connections; later queries fail.
    public func close() async {
        changes.finish()
        try? await client.query("DELETE FROM nodes WHERE id = \(processOwner)", logger: logger)
        await uploadLocks.close()
        clientTask.cancel()
    }

    /// Records that this node is alive now.
    private func beat() async throws {
        let now = Date().millisecondsSince1970
        try await client.query(
            """
            INSERT INTO nodes (id, seen_at) VALUES (\(processOwner), \(now))
            ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at
            """,
            logger: logger
        )
    }

    /// Hears the other nodes' commits on a connection of its own, reconnecting after a failure; after a
    /// reconnection `missed` tells the node that announcements may have been lost meanwhile.
    private func listen() async {
        var attempt = 0
        while !Task.isCancelled {
            do {
                let connection = try await PostgresConnection.connect(
                    on: PostgresClient.defaultEventLoopGroup.next(),
                    configuration: connection,
                    id: 0,
                    logger: logger
                ).get()
                do {
                    try await connection.listen(on: Self.channel) { notifications in
                        if attempt > 0 { changes.yield(.missed) }
                        attempt = 0
                        for try await notification in notifications {
                            if let change = Announcement.decode(notification.payload, ignoring: processOwner) {
                                changes.yield(change)
                            }
                        }
                    }
                } catch {
                    try? await connection.close()
                    throw error
                }
                try? await connection.close()
            } catch {
                if Task.isCancelled { return }
                logger.warning("Listening for other nodes failed", metadata: ["error": "\(error)"])
            }
            attempt += 1
            try? await Task.sleep(for: .milliseconds(min(2000, 100 * attempt)))
        }
    }

    /// Runs `body` in a transaction on a pooled connection. An error `body` throws is rethrown as it is
    /// once the transaction has rolled back.
    func transaction<T>(_ body: (PostgresConnection) async throws -> sending T) async throws -> sending T {
        do {
            return try await client.withTransaction(logger: logger, body)
        } catch let error as PostgresTransactionError {
            if let cause = error.closureError, error.rollbackError == nil { throw cause }
            throw error
        }
    }
}

/// What one node's commit tells the others, as a `NOTIFY` payload: the sending node, a kind, a number
/// and a name, separated by tabs (names never hold tabs).
enum Announcement {
    static func appended(topic: String, through offset: Int64, by node: String) -> String {
        "\(node)\ta\t\(offset)\t\(topic)"
    }

    static func queued(queue: String, count: Int, by node: String) -> String {
        "\(node)\tq\t\(count)\t\(queue)"
    }

    /// The change a payload announces, unless this node sent it itself or it is malformed.
    static func decode(_ payload: String, ignoring node: String) -> RemoteChange? {
        let fields = payload.split(separator: "\t", maxSplits: 3, omittingEmptySubsequences: false)
        guard fields.count == 4, fields[0] != node, let number = Int64(fields[2]) else { return nil }
        switch fields[1] {
        case "a": return .appended(topic: String(fields[3]), through: number)
        case "q": return .queued(queue: String(fields[3]), count: Int(number))
        default: return nil
        }
    }
}

/// A `postgres://` URL, as `--store` takes it.
struct PostgresURL {
    var host: String
    var port: Int
    var user: String
    var password: String?
    var database: String?
    var sslMode: String

    struct Invalid: Error, CustomStringConvertible {
        var description: String
    }

    init(_ text: String) throws {
        guard let url = URLComponents(string: text), url.scheme == "postgres" || url.scheme == "postgresql",
            let host = url.host, !host.isEmpty
        else {
            throw Invalid(description: "expected postgres://USER:PASSWORD@HOST:PORT/DATABASE, got '\(text)'")
        }
        self.host = host
        port = url.port ?? 5432
        user = url.user ?? "postgres"
        password = url.password
        let path = url.path.hasPrefix("/") ? String(url.path.dropFirst()) : url.path
        database = path.isEmpty ? nil : path
        sslMode = url.queryItems?.first { $0.name == "sslmode" }?.value ?? "prefer"
        guard ["disable", "prefer", "require"].contains(sslMode) else {
            throw Invalid(description: "sslmode must be disable, prefer or require, got '\(sslMode)'")
        }
    }

    var tls: PostgresClient.Configuration.TLS {
        switch sslMode {
        case "disable": .disable
        case "require": .require(.makeClientConfiguration())
        default: .prefer(.makeClientConfiguration())
        }
    }

    func connectionTLS() throws -> PostgresConnection.Configuration.TLS {
        switch sslMode {
        case "disable": .disable
        case "require": .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
        default: .prefer(try NIOSSLContext(configuration: .makeClientConfiguration()))
        }
    }
}

extension PostgresStore {
    /// Runs a statement directly, outside the store's operations (for tests and maintenance).
    package func execute(_ sql: String) async throws {
        try await client.query(PostgresQuery(unsafeSQL: sql), logger: logger)
    }
}
