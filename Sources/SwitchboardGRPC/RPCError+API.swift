import GRPCCore
import SwitchboardAPI
import SwitchboardEngine
import SwitchboardStore

extension RPCError {
    /// The gRPC status for an error of the shared features: the HTTP API's errors keep their message, and
    /// their code travels in the `switchboard-error-code` trailer (`topic_name_invalid`, `forbidden`, …).
    init(_ error: any Error) {
        if let error = error as? RPCError {
            self = error
            return
        }
        guard let error = HTTPError.of(error) else {
            if error is CancellationError {
                self = RPCError(code: .cancelled, message: "The call was cancelled")
            } else {
                self = RPCError(code: .internalError, message: "\(error)")
            }
            return
        }
        self = RPCError(
            code: Self.code(for: error),
            message: error.message,
            metadata: ["switchboard-error-code": "\(error.code)"]
        )
    }

    private static func code(for error: HTTPError) -> Code {
        switch error.status.code {
        case 400: .invalidArgument
        case 422: error.code == Idempotency.keyReused.code ? .alreadyExists : .invalidArgument
        case 401: .unauthenticated
        case 403: .permissionDenied
        case 404: .notFound
        case 409: error.code == Idempotency.keyInUse.code ? .aborted : .alreadyExists
        case 410, 412: .failedPrecondition
        case 413, 429, 431: .resourceExhausted
        case 501: .unimplemented
        case 503: .unavailable
        case 504: .deadlineExceeded
        default: .internalError
        }
    }
}

/// Runs `body`, turning the features' errors into gRPC statuses.
func rpc<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch {
        throw RPCError(error)
    }
}
