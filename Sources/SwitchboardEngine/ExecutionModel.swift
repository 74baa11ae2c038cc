/// How listening sockets and connections are spread over event loops (the seed's "Execution Patterns").
public enum ExecutionModel: String, Sendable, CaseIterable {
    /// One event loop listens, accepts and reads every connection: the NodeJS model.
    case single
    /// One listening socket; accepted connections are spread over N event loops. The default.
    case sharedListener = "shared-listener"
    /// N listening sockets bound to one port with `SO_REUSEPORT`, each owned by one event loop,
    /// so the kernel balances accepts (socket sharding, as NGINX and Envoy do).
    case reuseport
}
