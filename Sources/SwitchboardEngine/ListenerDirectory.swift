import NIOConcurrencyHelpers

/// What each listening socket of a node serves, by port: the kernel lists listening sockets by address
/// only, and `/v1/connections` names each with its role and execution model.
public final class ListenerDirectory: Sendable {
    public struct Listener: Sendable, Equatable {
        /// What the socket serves: `http`, `http (TLS)`, `grpc`, an edge listener's name, ….
        public var serves: String
        /// How its connections map onto event loops, when the engine's execution models apply.
        public var executionModel: ExecutionModel?
        /// The event loops its connections are spread over, when known.
        public var eventLoops: Int?

        public init(serves: String, executionModel: ExecutionModel? = nil, eventLoops: Int? = nil) {
            self.serves = serves
            self.executionModel = executionModel
            self.eventLoops = eventLoops
        }
    }

    private let byPort = NIOLockedValueBox<[Int: Listener]>([:])

    public init() {}

    /// Records the listener bound to `port`.
    public func add(port: Int, _ listener: Listener) {
        byPort.withLockedValue { $0[port] = listener }
    }

    func listener(port: Int) -> Listener? {
        byPort.withLockedValue { $0[port] }
    }
}
