import NIOPosix
import ServiceLifecycle

/// A fixed set of threads for CPU-heavy work (hashing, large decodes, job handlers), so that such work
/// never runs on an event loop. Runs as a `Service`; work submitted after shutdown is refused.
public final class WorkerPool: Service, Sendable {
    public let threads: Int
    private let pool: NIOThreadPool

    public init(threads: Int) {
        self.threads = max(1, threads)
        self.pool = NIOThreadPool(numberOfThreads: self.threads)
        pool.start()
    }

    /// Runs `work` on a pool thread and returns its result.
    public func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await pool.runIfActive(work)
    }

    public func run() async throws {
        try? await gracefulShutdown()
        try await pool.shutdownGracefully()
    }
}
