import GRPCCore
import SwitchboardProtos
import Synchronization

/// `grpc.health.v1.Health`: every service of the node (and the node itself, `""`) is SERVING until
/// graceful shutdown begins, then NOT_SERVING; `Watch` streams each change.
final class HealthService: Grpc_Health_V1_Health.ServiceProtocol, Sendable {
    typealias Status = Grpc_Health_V1_HealthCheckResponse.ServingStatus

    static let services: Set<String> = [
        "", "todoPackage.Todo", "switchboard.v1.Topics", "switchboard.v1.Jobs", "grpc.health.v1.Health",
    ]

    private struct State {
        var serving = true
        var watchers: [Int: AsyncStream<Status>.Continuation] = [:]
        var nextWatcher = 0
    }

    private let state = Mutex(State())

    /// Graceful shutdown has begun: every service turns NOT_SERVING, and each `Watch` ends after saying
    /// so (an open call would hold the listener's shutdown back).
    func beginShutdown() {
        let watchers = state.withLock { state in
            state.serving = false
            return Array(state.watchers.values)
        }
        for watcher in watchers {
            watcher.yield(.notServing)
            watcher.finish()
        }
    }

    func check(
        request: ServerRequest<Grpc_Health_V1_HealthCheckRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<Grpc_Health_V1_HealthCheckResponse> {
        guard Self.services.contains(request.message.service) else {
            throw RPCError(code: .notFound, message: "No service named \(request.message.service)")
        }
        return ServerResponse(message: .with { $0.status = status(of: request.message.service) })
    }

    func watch(
        request: ServerRequest<Grpc_Health_V1_HealthCheckRequest>,
        context: ServerContext
    ) async throws -> StreamingServerResponse<Grpc_Health_V1_HealthCheckResponse> {
        let service = request.message.service
        let lifetime = CallLifetime(metadata: request.metadata)
        return StreamingServerResponse { writer in
            // It says NOT_SERVING at shutdown, then ends by itself.
            try await lifetime.run(endsAtShutdown: false) { try await self.watch(service, writer: writer) }
            return [:]
        }
    }

    private func watch(
        _ service: String,
        writer: RPCWriter<Grpc_Health_V1_HealthCheckResponse>
    ) async throws {
        let (changes, continuation) = AsyncStream.makeStream(of: Status.self)
        let id = state.withLock { state in
            defer { state.nextWatcher += 1 }
            state.watchers[state.nextWatcher] = continuation
            return state.nextWatcher
        }
        defer { _ = state.withLock { $0.watchers.removeValue(forKey: id) } }
        if !state.withLock({ $0.serving }) { continuation.finish() }
        var last = status(of: service)
        try await writer.write(.with { $0.status = last })
        // Ends with the call, or after NOT_SERVING at shutdown.
        for await change in changes where Self.services.contains(service) && change != last {
            last = change
            try await writer.write(.with { $0.status = change })
        }
    }

    private func status(of service: String) -> Status {
        guard Self.services.contains(service) else { return .serviceUnknown }
        return state.withLock { $0.serving } ? .serving : .notServing
    }
}
