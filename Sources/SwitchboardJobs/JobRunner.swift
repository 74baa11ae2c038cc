import Logging
import ServiceLifecycle
import SwitchboardStore
import Synchronization

/// The built-in workers: for each queue they serve, a dispatcher that claims as many jobs at once as it
/// has free slots (up to the queue's concurrency) and runs each handler under a heartbeat and a timeout,
/// recording the outcome. On graceful shutdown they stop claiming and finish the attempts they hold.
public final class JobRunner: Service, Sendable {
    private let jobs: Jobs
    private let handlers: JobHandlers
    /// Concurrency by queue.
    private let queues: [String: Int]
    private let logger: Logger

    public init(jobs: Jobs, handlers: JobHandlers, queues: [String: Int], logger: Logger) {
        self.jobs = jobs
        self.handlers = handlers
        self.queues = queues
        self.logger = logger
    }

    public func run() async throws {
        await withDiscardingTaskGroup { group in
            for (queue, concurrency) in queues {
                group.addTask { await self.dispatch(queue: queue, concurrency: max(1, concurrency)) }
            }
        }
    }

    /// Claims jobs of `queue` into free slots and runs them, until graceful shutdown.
    private func dispatch(queue: String, concurrency: Int) async {
        let running = RunningCount()
        let (freed, slotFreed) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        var freedSlots = freed.makeAsyncIterator()
        await withDiscardingTaskGroup { group in
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                let free = concurrency - running.value.load(ordering: .acquiring)
                guard free > 0 else {
                    _ = await freedSlots.next()
                    continue
                }
                do {
                    let claimed = try await cancelWhenGracefulShutdown {
                        try await self.jobs.claim(queue: queue, limit: free, waitingUpTo: .seconds(5))
                    }
                    running.value.add(claimed.count, ordering: .releasing)
                    for job in claimed {
                        group.addTask {
                            await self.execute(job)
                            running.value.subtract(1, ordering: .releasing)
                            slotFreed.yield()
                        }
                    }
                } catch is CancellationError {
                    break
                } catch {
                    logger.error("Claim failed", metadata: ["queue": "\(queue)", "error": "\(error)"])
                    try? await Task.sleep(for: .seconds(1))
                }
            }
        }
    }

    /// Runs one attempt and records how it ended.
    private func execute(_ job: Job) async {
        guard let token = job.leaseToken else { return }
        let outcome: Result<JSONValue, any Error>
        if let handler = handlers[job.type] {
            outcome = await attempt(job, with: handler, token: token)
        } else {
            outcome = .failure(PermanentJobFailure("No built-in handler runs jobs of type \(job.type)"))
        }
        do {
            switch outcome {
            case .success(let result):
                _ = try await jobs.complete(id: job.id, token: token, result: result)
            case .failure(let error):
                _ = try await jobs.fail(
                    id: job.id,
                    token: token,
                    error: String(describing: error),
                    retry: !(error is PermanentJobFailure)
                )
            }
        } catch {
            // The lease was lost (cancelled, or expired and claimed again): this attempt no longer counts.
            logger.warning("Outcome not recorded", metadata: ["job": "\(job.id)", "error": "\(error)"])
        }
    }

    /// The handler's result, racing its timeout, while a heartbeat keeps the lease; the lease being lost
    /// (a cancellation, say) stops the handler.
    private func attempt(_ job: Job, with handler: any JobHandler, token: String) async -> Result<JSONValue, any Error>
    {
        guard let input = JSONValue(json: job.input) else {
            return .failure(PermanentJobFailure("The stored input is not JSON"))
        }
        let lease = jobs.configuration.defaultLease
        let timeout = Duration.milliseconds(Int64(job.timeoutSeconds * 1000))
        return await withTaskGroup(of: Result<JSONValue, any Error>?.self) { group in
            group.addTask { await Result(catching: { try await handler.run(input) }) }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return Task.isCancelled ? nil : .failure(AttemptTimedOut(seconds: job.timeoutSeconds))
            }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: lease / 3)
                    guard !Task.isCancelled else { return nil }
                    do {
                        _ = try await self.jobs.heartbeat(id: job.id, token: token)
                    } catch JobStoreError.leaseLost, JobStoreError.notFound {
                        return .failure(JobStoreError.leaseLost)
                    } catch {
                        continue
                    }
                }
                return nil
            }
            defer { group.cancelAll() }
            while let next = await group.next() {
                if let outcome = next { return outcome }
            }
            return .failure(CancellationError())
        }
    }
}

/// How many jobs a dispatcher has running.
private final class RunningCount: Sendable {
    let value = Atomic(0)
}

/// An attempt ran past its job's `timeoutSeconds`.
struct AttemptTimedOut: Error, CustomStringConvertible {
    var seconds: Double
    var description: String { "The attempt ran past its timeout of \(seconds) s" }
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do {
            self = .success(try await body())
        } catch {
            self = .failure(error)
        }
    }
}
