import GRPCCore
import SwitchboardAPI

/// Who makes a call: the principal of its `authorization: Bearer <JWT>` metadata, verified with the
/// same keys and claims as the HTTP API. Services pass the principal explicitly to every check, so a
/// check never depends on a task-local scope a streaming response may have left.
struct CallAuthorizer: Sendable {
    /// `nil` while authentication is off: then every call is allowed.
    let authentication: Authentication?

    /// The caller; throws UNAUTHENTICATED for a missing or bad token while authentication is on.
    func principal(of metadata: Metadata) async throws -> Principal? {
        guard let authentication else { return nil }
        let bearer = metadata[stringValues: "authorization"].first(where: { _ in true })
            .flatMap(Authentication.bearerToken(inAuthorization:))
        return try await rpc { try await authentication.principal(bearer: bearer) }
    }

    /// Throws PERMISSION_DENIED unless `principal` may do `action`.
    func authorize(_ action: Principal.Action, for principal: Principal?) throws {
        do {
            try Principal.authorize(action, for: principal)
        } catch {
            throw RPCError(error)
        }
    }
}
