import ServiceLifecycle

/// Durable state of a node. One protocol, one implementation per database: SQLite now (embedded
/// default), PostgreSQL for several nodes later; SQL dialects and connections stay behind it.
///
/// A store is a `Service`: it closes cleanly once every service started after it has stopped.
public protocol Store: Service, Sendable {
    /// A short name for logs and metrics, such as `sqlite`.
    var kind: String { get }
    /// Succeeds when the store can answer a query now (used by `/readyz`).
    func ping() async throws
}
