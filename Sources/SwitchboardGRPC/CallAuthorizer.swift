import GRPCCore
import SwitchboardAPI

/// Who makes a call: the caller of its `authorization: Bearer <JWT>` metadata, verified with the same
/// keys and claims as the HTTP API. Services pass the caller explicitly to every check, so a check never
/// depends on a task-local scope a streaming response may have left.
struct CallAuthorizer: Sendable {
    /// `nil` while authentication is off: then every call's caller is `anyone`.
    let authentication: Authentication?

    /// The caller; throws UNAUTHENTICATED for a missing or bad token while authentication is on.
    func caller(of metadata: Metadata) async throws -> Caller {
        let bearer = metadata[stringValues: "authorization"].first(where: { _ in true })
            .flatMap(Authentication.bearerToken(inAuthorization:))
        return try await rpc { try await Caller.of(bearer: bearer, authentication: authentication) }
    }

    /// Throws PERMISSION_DENIED unless `caller` may do `action`.
    func authorize(_ action: Principal.Action, for caller: Caller) throws {
        do {
            try caller.authorize(action)
        } catch {
            throw RPCError(error)
        }
    }
}
