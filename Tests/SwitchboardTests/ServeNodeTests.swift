import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import SwitchboardClient
import SwitchboardSQLite
import Testing

@testable import Switchboard

/// A whole node in process: the store opens in WAL mode, the operational endpoints answer, and the
/// journey histograms fill in.
@Suite struct ServeNodeTests {
    @Test func operationalEndpointsAnswerThroughTheClient() async throws {
        try await withNode { node, client in
            #expect(try await client.isHealthy())
            let readiness = try await client.readiness()
            #expect(readiness.status == "ready")
            #expect(readiness.store == "sqlite")
            let metrics = try await client.metricsText()
            for stage in ["read", "parse", "decode", "process", "write"] {
                #expect(metrics.contains(#"switchboard_request_stage_seconds_count{stage="\#(stage)"}"#))
            }
            #expect(metrics.contains("switchboard_requests_total"))
            #expect(try await (node.store as! SQLiteStore).journalMode() == "wal")
        }
    }

    @Test func errorsReachTheClientAsCodes() async throws {
        try await withNode { _, client in
            let reply = try await client.send(.GET, "/v1/nothing")
            #expect(reply.status == .notFound)
            #expect(reply.text == #"{"error":{"code":"route_not_found","message":"No route for /v1/nothing"}}"#)
        }
    }

    @Test func readinessFailsWhenTheStoreIsClosed() async throws {
        try await withNode { node, client in
            try (node.store as! SQLiteStore).close()
            await #expect(throws: SwitchboardError.self) { _ = try await client.readiness() }
            let reply = try await client.send(.GET, "/readyz")
            #expect(reply.status == .serviceUnavailable)
            #expect(reply.text.contains(#""code":"store_unavailable""#))
        }
    }

    private func withNode(_ body: @Sendable (ServeNode, SwitchboardClient) async throws -> Void) async throws {
        var settings = ServeSettings()
        settings.engine.port = 0
        settings.engine.eventLoops = 1
        settings.grpc?.port = 0
        settings.stun?.port = 0
        settings.workerThreads = 1
        settings.dataDirectory =
            FileManager.default.temporaryDirectory
            .appendingPathComponent("switchboard-\(UUID().uuidString)").path
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let node = try await ServeNode(settings: settings, logger: logger) { address in
            continuation.yield(address.port ?? 0)
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await node.run() }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            try await body(node, SwitchboardClient(baseURL: "http://127.0.0.1:\(port)"))
            await node.shutdown()
            try await group.waitForAll()
        }
    }
}
