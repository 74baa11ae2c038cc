import Foundation
import Logging
import NIOCore
import NIOSSL
import PostgresNIO
import ServiceLifecycle
import SwitchboardStore
import Synchronization

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
    /// A connection of this node's own, outside the pool: heartbeats and upload locks use it, so that a
    /// busy pool never looks like an unreachable database.
    private let session: SessionConnection
    let uploadLocks: UploadSessionLocks
    /// Tells the other nodes what this one committed.
    let announcer: Announcer
    /// Group commit for job submissions.
    let submissions = SubmissionBatcher()
    /// Group commit for completed and failed attempts.
    let attemptEnds = AttemptEndBatcher()
    /// Whether the database answered the last heartbeat; while not, operations fail at once.
    private let reachable = Atomic<Bool>(true)

    /// How often this node renews its row in `nodes`.
    static let heartbeat = Duration.seconds(2)
    /// How long a node may be silent before what it held is taken over.
    static let nodeTimeout: Int64 = 10_000
    /// How long an operation may take before it fails as `StoreUnavailable`.
    static let operationTimeout = Duration.seconds(10)
    /// The channel every node notifies and listens on.
    static let channel = "switchboard"

    /// Connects to the database at `url` (`postgres://USER:PASSWORD@HOST:PORT/DATABASE`, with
    /// `?sslmode=disable|prefer|require|verify-full`), brings the schema up to date and registers this node.
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
        configuration.options.connectTimeout = .seconds(2)
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.client = client
        self.logger = logger
        var connection = PostgresConnection.Configuration(
            host: target.host,
            port: target.port,
            username: target.user,
            password: target.password,
            database: target.database,
            tls: try target.connectionTLS()
        )
        connection.options.connectTimeout = .seconds(2)
        self.connection = connection
        self.clientTask = Task { await client.run() }
        (remoteChanges, changes) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(100_000))
        session = SessionConnection(configuration: connection, logger: logger)
        announcer = Announcer(client: client, node: processOwner, channel: Self.channel, logger: logger)
        uploadLocks = UploadSessionLocks(session: session)
        do {
            try await PostgresSchema.migrate(connection, logger: logger)
            try await beat()
        } catch {
            clientTask.cancel()
            throw error
        }
    }

    public func ping() async throws {
        try await withConnection(timeout: .seconds(2)) { connection in
            _ = try await connection.query("SELECT 1", logger: self.logger)
        }
    }

    /// Renews this node's heartbeat and listens for the other nodes' commits until graceful shutdown;
    /// then leaves the cluster and closes the connections.
    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.listen() }
            group.addTask {
                var others: Set<String> = []
                while !Task.isCancelled {
                    try? await Task.sleep(for: Self.heartbeat)
                    do {
                        try await self.beat()
                        // A node that went silent may have died between a commit and its announcement.
                        let live = try await self.liveNodes()
                        if !others.subtracting(live).isEmpty { self.changes.yield(.missed) }
                        others = live
                    } catch {
                        if !Task.isCancelled {
                            self.logger.warning("Node heartbeat failed", metadata: ["error": "\(error)"])
                        }
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
        let node = processOwner
        try? await withConnection(timeout: .seconds(2)) { connection in
            _ = try await connection.query("DELETE FROM nodes WHERE id = \(node)", logger: self.logger)
        }
        await session.close()
        clientTask.cancel()
    }

    /// Records that this node is alive now, and that the database answers: the probe that lets
    /// operations through again after it was unreachable.
    private func beat() async throws {
        let (node, session) = (processOwner, session)
        try await bounded(.seconds(2), probe: true) {
            _ = try await session.query(
                """
                INSERT INTO nodes (id, seen_at) VALUES (\(node), \(Date().millisecondsSince1970))
                ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at RETURNING true
                """,
                as: Bool.self
            )
        }
        reachable.store(true, ordering: .relaxed)
    }

    /// The other nodes whose heartbeat is recent.
    private func liveNodes() async throws -> Set<String> {
        let since = Date().millisecondsSince1970 - Self.nodeTimeout
        let ids = try await session.values(
            "SELECT id FROM nodes WHERE seen_at > \(since) AND id <> \(processOwner)",
            as: String.self
        )
        return Set(ids)
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
                        if attempt > 0 {
                            // Connected again, so the database answers; what was announced meanwhile is lost.
                            reachable.store(true, ordering: .relaxed)
                            changes.yield(.missed)
                        }
                        attempt = 0
                        for try await notification in notifications {
                            if let change = AnnouncementPayload.decode(notification.payload, ignoring: processOwner) {
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

    /// Runs a statement and discards what it returns.
    func execute(_ query: PostgresQuery) async throws {
        try await withConnection { connection in _ = try await connection.query(query, logger: self.logger) }
    }

    /// The first column of every row of `query`.
    func values<T: PostgresDecodable & Sendable>(_ query: PostgresQuery, as type: T.Type) async throws -> [T] {
        try await withConnection { connection in
            var values: [T] = []
            for try await value in try await connection.query(query, logger: self.logger).decode(T.self) {
                values.append(value)
            }
            return values
        }
    }

    /// Runs `body` on a pooled connection.
    func withConnection<T: Sendable>(
        timeout: Duration = operationTimeout,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        try await bounded(timeout) { try await self.leased(body) }
    }

    /// Runs `body` in a transaction on a pooled connection. An error `body` throws is rethrown as it is
    /// once the transaction has rolled back.
    func transaction<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T
    {
        try await bounded(Self.operationTimeout) {
            try await self.leased { connection in
                do {
                    return try await connection.withTransaction(logger: self.logger) { try await body($0) }
                } catch let error as PostgresTransactionError {
                    // What the body threw, even when the connection broke so that the rollback failed too;
                    // else what broke BEGIN or COMMIT (a lost connection is then `StoreUnavailable`).
                    if let cause = error.closureError { throw cause }
                    throw error.beginError ?? error.commitError ?? error.rollbackError ?? error
                }
            }
        }
    }

    /// Runs `body` on a connection from the pool. Failing to get one means the database cannot be
    /// reached: that is `StoreUnavailable`, while what `body` throws comes out as it is.
    private func leased<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws
        -> T
    {
        do {
            return try await client.withConnection { connection in
                do { return try await body(connection) } catch { throw BodyFailed(error: error) }
            }
        } catch let failed as BodyFailed {
            throw failed.error
        } catch  where Task.isCancelled {
            throw CancellationError()
        } catch {
            throw StoreUnavailable(reason: "no connection to PostgreSQL: \(error)")
        }
    }

    /// Runs a database operation within `timeout`, failing with `StoreUnavailable` when it cannot reach
    /// the database: at once while the last heartbeat failed (unless this is the heartbeat, the `probe`),
    /// else when the connection fails or nothing answers in time. The pool alone would keep callers
    /// waiting for a connection until its circuit breaker trips, a minute later.
    private func bounded<T: Sendable>(
        _ timeout: Duration,
        probe: Bool = false,
        _ operation: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        guard probe || reachable.load(ordering: .relaxed) else {
            throw StoreUnavailable(reason: "PostgreSQL did not answer the last heartbeat")
        }
        do {
            return try await Self.racing(operation, against: timeout)
        } catch let error as StoreUnavailable {
            // A slow answer or a long wait for a pooled connection is the load's, not an outage: only the
            // heartbeat's own failure stops everything.
            if probe { markUnreachable(error) }
            throw error
        } catch  where Self.meansUnreachable(error) {
            markUnreachable(error)
            throw StoreUnavailable(reason: "\(error)")
        }
    }

    /// The operation's outcome, or `StoreUnavailable` once `timeout` has passed, whichever comes first. The
    /// operation runs in a task of its own and is cancelled at the timeout, but not waited for: a query
    /// on a connection that hangs does not hold its caller. (Its outcome is then unknown; see "Outages".)
    private static func racing<T: Sendable>(
        _ operation: @escaping @Sendable () async throws -> T,
        against timeout: Duration
    ) async throws -> T {
        let outcome = FirstOutcome<T>()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                outcome.wait(continuation)
                let work = Task {
                    do { outcome.settle(.success(try await operation())) } catch { outcome.settle(.failure(error)) }
                }
                let timer = Task {
                    try await Task.sleep(for: timeout)
                    outcome.settle(.failure(StoreUnavailable(reason: "PostgreSQL did not answer within \(timeout)")))
                }
                // Once settled, whichever way: the work is no longer awaited, the timer no longer needed.
                outcome.whenSettled {
                    work.cancel()
                    timer.cancel()
                }
            }
        } onCancel: {
            outcome.settle(.failure(CancellationError()))
        }
    }

    /// Stops operations until a heartbeat gets through again.
    private func markUnreachable(_ error: any Error) {
        if reachable.exchange(false, ordering: .relaxed) {
            logger.warning("PostgreSQL unreachable", metadata: ["error": "\(String(reflecting: error))"])
        }
    }

    /// Whether `error` says the database cannot be reached, rather than that a statement failed.
    private static func meansUnreachable(_ error: any Error) -> Bool {
        switch error {
        case let error as PSQLError where error.code == .server:
            // Connection exceptions (08…), shutdown (57P01–57P03), too many connections (53300).
            let state = error.serverInfo?[.sqlState] ?? ""
            return state.hasPrefix("08") || state.hasPrefix("57P") || state == "53300"
        case let error as PSQLError:
            return error.code != .queryCancelled && error.code != .tooManyParameters
        default: return false
        }
    }
}

/// What the body of `leased` threw, told apart from a failure to lease.
private struct BodyFailed: Error {
    var error: any Error
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
        guard ["disable", "prefer", "require", "verify-full"].contains(sslMode) else {
            throw Invalid(description: "sslmode must be disable, prefer, require or verify-full, got '\(sslMode)'")
        }
    }

    /// As libpq: `prefer` and `require` encrypt without checking the certificate, `verify-full` checks
    /// it and the host name.
    private var tlsConfiguration: TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        if sslMode != "verify-full" { configuration.certificateVerification = .none }
        return configuration
    }

    var tls: PostgresClient.Configuration.TLS {
        switch sslMode {
        case "disable": .disable
        case "prefer": .prefer(tlsConfiguration)
        default: .require(tlsConfiguration)
        }
    }

    func connectionTLS() throws -> PostgresConnection.Configuration.TLS {
        switch sslMode {
        case "disable": .disable
        case "prefer": .prefer(try NIOSSLContext(configuration: tlsConfiguration))
        default: .require(try NIOSSLContext(configuration: tlsConfiguration))
        }
    }
}

extension PostgresStore {
    /// Runs a statement directly, outside the store's operations (for tests and maintenance).
    package func execute(unsafeSQL sql: String) async throws {
        try await execute(PostgresQuery(unsafeSQL: sql))
    }
}

/// The first of several outcomes, handed to one waiting continuation; the later ones are dropped.
private final class FirstOutcome<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var outcome: Result<T, any Error>?
        var cancel: (@Sendable () -> Void)?
    }

    private let state = Mutex(State())

    func wait(_ continuation: CheckedContinuation<T, any Error>) {
        let settled = state.withLock { state -> Result<T, any Error>? in
            if let outcome = state.outcome { return outcome }
            state.continuation = continuation
            return nil
        }
        if let settled { continuation.resume(with: settled) }
    }

    /// Runs `cancel` if the outcome is already settled, or when it is.
    func whenSettled(_ cancel: @escaping @Sendable () -> Void) {
        let settled = state.withLock { state -> Bool in
            if state.outcome != nil { return true }
            state.cancel = cancel
            return false
        }
        if settled { cancel() }
    }

    func settle(_ outcome: Result<T, any Error>) {
        let (continuation, cancel) = state.withLock {
            state -> (CheckedContinuation<T, any Error>?, (@Sendable () -> Void)?) in
            guard state.outcome == nil else { return (nil, nil) }
            state.outcome = outcome
            defer { state.continuation = nil }
            return (state.continuation, state.cancel)
        }
        continuation?.resume(with: outcome)
        cancel?()
    }
}
