import ServiceLifecycle

/// Durable state of a node. One set of protocols, one implementation per database: SQLite (the embedded
/// default, one node) and PostgreSQL (shared by several nodes); SQL dialects and connections stay behind
/// them.
///
/// A store is a `Service`: it closes cleanly once every service started after it has stopped.
public protocol Store: Service, Sendable {
    /// A short name for logs and metrics, such as `sqlite`.
    var kind: String { get }
    /// Succeeds when the store can answer a query now (used by `/readyz`).
    func ping() async throws
}

/// A store that several nodes share. Each node fans out its own commits; this tells it what the others
/// committed, so that it can wake its own subscribers and workers, which then read the store.
public protocol SharedStore: Store {
    /// What other nodes committed, in the order they committed it, for as long as the store runs.
    var remoteChanges: AsyncStream<RemoteChange> { get }
}

/// A commit of another node that this node's waiters may care about.
public enum RemoteChange: Sendable, Equatable {
    /// Messages were appended to `topic`, up to and including offset `through`.
    case appended(topic: String, through: Int64)
    /// `count` jobs became due on `queue`.
    case queued(queue: String, count: Int)
    /// Announcements may have been lost (the feed reconnected): anything may have changed.
    case missed
}

/// Everything a node keeps in its store.
public typealias NodeStore = Store & TopicStore & JobStore & IdempotencyStore & UploadStore & TodoStore

/// The store cannot be reached now (the database is down, or did not answer in time). The operation did
/// not happen, or did and could not be confirmed: a client retries it, with an idempotency key where a
/// second run would matter.
public struct StoreUnavailable: Error, CustomStringConvertible {
    public var reason: String

    public init(reason: String) {
        self.reason = reason
    }

    public var description: String { "The store is unavailable: \(reason)" }
}
