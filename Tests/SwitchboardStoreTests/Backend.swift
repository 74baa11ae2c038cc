import Foundation
import Logging
import PostgresNIO
import SwitchboardPostgres
import SwitchboardSQLite
import SwitchboardStore
import Testing

/// A store backend the conformance suite runs on: SQLite in a temporary directory, or a fresh database
/// on the PostgreSQL server at `SWITCHBOARD_TEST_POSTGRES` (`scripts/test` starts one).
enum Backend: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case sqlite
    case postgres

    var testDescription: String { rawValue }

    /// A new, empty store.
    func open() async throws -> any NodeStore {
        try await openCluster(nodes: 1)[0]
    }

    /// Stores that share one database, as nodes do; SQLite has one node only, so its "nodes" are one
    /// store.
    func openCluster(nodes: Int) async throws -> [any NodeStore] {
        switch self {
        case .sqlite:
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("store-\(UUID().uuidString)")
            let store = try SQLiteStore(directory: directory.path)
            return Array(repeating: store, count: nodes)
        case .postgres:
            let url = try await TestDatabase.create()
            var stores: [any NodeStore] = []
            for _ in 0..<nodes {
                stores.append(try await PostgresStore(url: url, maxConnections: 8, logger: TestDatabase.logger))
            }
            return stores
        }
    }

    /// Runs SQL on the store's database directly (to corrupt a row, say).
    func execute(_ sql: String, on store: any NodeStore) async throws {
        switch store {
        case let store as SQLiteStore: try await store.execute(unsafeSQL: sql)
        case let store as PostgresStore: try await store.execute(unsafeSQL: sql)
        default: Issue.record("unknown store \(store.kind)")
        }
    }
}

/// Fresh databases on the test server.
enum TestDatabase {
    static let logger = Logger(label: "store-tests")

    /// Creates a database and returns its URL.
    static func create() async throws -> String {
        guard let server = ProcessInfo.processInfo.environment["SWITCHBOARD_TEST_POSTGRES"] else {
            throw Unset()
        }
        guard var url = URLComponents(string: server), let host = url.host else { throw Unset() }
        let name = "store_\(UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased())"
        let configuration = PostgresConnection.Configuration(
            host: host,
            port: url.port ?? 5432,
            username: url.user ?? "postgres",
            password: url.password,
            database: String(url.path.dropFirst()),
            tls: .disable
        )
        let connection = try await PostgresConnection.connect(
            on: PostgresClient.defaultEventLoopGroup.next(),
            configuration: configuration,
            id: 1,
            logger: logger
        ).get()
        try await connection.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: logger)
        try await connection.close()
        url.path = "/" + name
        return url.string!
    }

    struct Unset: Error, CustomStringConvertible {
        var description: String {
            "SWITCHBOARD_TEST_POSTGRES is not set to a postgres:// URL: run scripts/test, or "
                + "`export SWITCHBOARD_TEST_POSTGRES=$(scripts/postgres start /tmp/pg)`"
        }
    }
}
