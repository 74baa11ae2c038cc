import Logging
import NIOCore
import PostgresNIO
import SwitchboardStore

/// Upload write locks that hold across nodes: a PostgreSQL advisory lock per upload, taken on the
/// connection this node keeps outside its pool (a session lock lives as long as its connection, so a
/// node that dies releases its locks with it), in front of the in-process locks (the same session may
/// take a lock twice).
final class UploadSessionLocks: Sendable {
    /// The first key of upload locks; the second is the hash of the upload id.
    private static let space: Int32 = 0x5550  // "UP"

    private let local = UploadLocks()
    private let session: SessionConnection

    init(session: SessionConnection) {
        self.session = session
    }

    func lock(_ id: String) async throws -> Bool {
        guard local.lock(id) else { return false }
        do {
            let taken = try await session.query(
                "SELECT pg_try_advisory_lock(\(Self.space), hashtext(\(id)))",
                as: Bool.self
            )
            if taken != true { local.unlock(id) }
            return taken == true
        } catch {
            local.unlock(id)
            throw error
        }
    }

    func unlock(_ id: String) async {
        _ = try? await session.query("SELECT pg_advisory_unlock(\(Self.space), hashtext(\(id)))", as: Bool.self)
        local.unlock(id)
    }

}

/// One connection kept open for session state, opened on first use and again after it fails.
actor SessionConnection {
    private let configuration: PostgresConnection.Configuration
    private let logger: Logger
    private var connection: PostgresConnection?
    /// The connect in progress: callers that arrive meanwhile wait for it rather than open another (the
    /// actor lets them in while it awaits).
    private var connecting: Task<PostgresConnection, any Error>?

    init(configuration: PostgresConnection.Configuration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// The first column of the first row of `query`.
    func query<T: PostgresDecodable & Sendable>(_ query: PostgresQuery, as type: T.Type) async throws -> T? {
        try await values(query, as: type).first
    }

    /// The first column of every row of `query`.
    func values<T: PostgresDecodable & Sendable>(_ query: PostgresQuery, as type: T.Type) async throws -> [T] {
        let connection = try await open()
        do {
            var values: [T] = []
            for try await value in try await connection.query(query, logger: logger).decode(T.self) {
                values.append(value)
            }
            return values
        } catch {
            if connection.isClosed { self.connection = nil }
            throw error
        }
    }

    func close() async {
        try? await connection?.close()
        connection = nil
    }

    deinit {
        // A connection must be closed before it goes: kept until its close completes.
        guard let connection else { return }
        let closed: EventLoopFuture<Void> = connection.close()
        closed.whenComplete { _ in withExtendedLifetime(connection) {} }
    }

    private func open() async throws -> PostgresConnection {
        if let connection, !connection.isClosed { return connection }
        if let connecting { return try await connecting.value }
        let (configuration, logger) = (configuration, logger)
        let attempt = Task {
            try await PostgresConnection.connect(
                on: PostgresClient.defaultEventLoopGroup.next(),
                configuration: configuration,
                id: 1,
                logger: logger
            ).get()
        }
        connecting = attempt
        defer { connecting = nil }
        let opened = try await attempt.value
        connection = opened
        return opened
    }
}
