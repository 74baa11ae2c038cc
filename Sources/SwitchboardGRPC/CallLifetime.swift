import GRPCCore
import ServiceLifecycle

/// How long a long-lived call (a subscription, a watch, a session) runs: until its work ends or gRPC
/// cancels the call — the client went away, its deadline passed, or the server is shutting down. gRPC
/// signals that through the call's cancellation handle, not by cancelling the handler's task, so this
/// turns one into the other.
struct CallLifetime: Sendable {
    /// When the client's `grpc-timeout` runs out, if it sent one.
    let deadline: ContinuousClock.Instant?

    init(metadata: Metadata) {
        deadline = metadata[stringValues: "grpc-timeout"].first(where: { _ in true })
            .flatMap(Self.duration(ofTimeout:))
            .map { ContinuousClock.now + $0 }
    }

    /// Runs `body` in a task of its own that is cancelled with the call, and unless `endsAtShutdown` is
    /// false, when the server begins its graceful shutdown. A cancelled call ends with DEADLINE_EXCEEDED
    /// once its deadline has passed, UNAVAILABLE at shutdown (clients retry elsewhere), CANCELLED
    /// otherwise.
    func run<T: Sendable>(
        endsAtShutdown: Bool = true,
        _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let work = Task {
            endsAtShutdown ? try await cancelWhenGracefulShutdown { try await body() } : try await body()
        }
        let result = await withRPCCancellationHandler {
            await work.result
        } onCancelRPC: {
            work.cancel()
        }
        if let deadline, ContinuousClock.now >= deadline - Self.deadlineSlack, work.isCancelled {
            throw RPCError(code: .deadlineExceeded, message: "The call's deadline passed")
        }
        if Task.isShuttingDownGracefully, case .failure = result {
            throw RPCError(code: .unavailable, message: "The server is shutting down")
        }
        if work.isCancelled {
            throw RPCError(code: .cancelled, message: "The call was cancelled")
        }
        return try result.get()
    }

    /// gRPC's own timer for the deadline starts before the handler reads the metadata, so it cancels the
    /// call a little before `deadline` as measured here — by more on a loaded machine. (A client that
    /// cancels within this of its deadline is counted as timed out; it never sees the status either way.)
    static let deadlineSlack = Duration.milliseconds(250)

    /// A `grpc-timeout` value: up to 8 digits and a unit (H, M, S, m, u, n).
    static func duration(ofTimeout text: String) -> Duration? {
        guard let unit = text.last, let amount = Int64(text.dropLast()), (1...8).contains(text.count - 1)
        else { return nil }
        switch unit {
        case "H": return .seconds(amount * 3600)
        case "M": return .seconds(amount * 60)
        case "S": return .seconds(amount)
        case "m": return .milliseconds(amount)
        case "u": return .microseconds(amount)
        case "n": return .nanoseconds(amount)
        default: return nil
        }
    }
}
