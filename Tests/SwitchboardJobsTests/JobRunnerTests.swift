import Foundation
import Logging
import SwitchboardEngine
import SwitchboardStore
import Synchronization
import Testing

@testable import SwitchboardJobs

/// The built-in workers, run as a service over a real store.
@Suite struct JobRunnerTests {
    /// Fails its first attempt, then answers with the attempt number.
    struct Flaky: JobHandler {
        let type = "flaky"
        let attempts = Counter()

        func validate(_ input: JSONValue) throws {}

        func run(_ input: JSONValue) async throws -> JSONValue {
            let attempt = attempts.increment()
            if attempt == 1 { throw Transient() }
            return .number(Double(attempt))
        }
    }

    struct Transient: Error {}

    final class Counter: Sendable {
        private let value = Mutex(0)
        func increment() -> Int {
            value.withLock {
                $0 += 1; return $0
            }
        }
    }

    private static let pool = WorkerPool(threads: 1)

    private func withRunner(
        _ handlers: [any JobHandler],
        _ body: @Sendable (Jobs) async throws -> Void
    ) async throws {
        let fixture = try JobsTests.Fixture(realTime: true)
        let runner = JobRunner(
            jobs: fixture.jobs,
            handlers: JobHandlers(handlers),
            queues: ["default": 2],
            logger: Logger(label: "test")
        )
        let task = Task { try await runner.run() }
        defer { task.cancel() }
        try await body(fixture.jobs)
    }

    private static func submit(_ jobs: Jobs, _ type: String, _ input: String, timeout: Double = 60) async throws -> Job
    {
        try await jobs.submit(
            NewJob(queue: "default", type: type, input: Data(input.utf8), maxAttempts: 3, timeoutSeconds: timeout)
        ).job
    }

    @Test func sha256RunsOnTheWorkerPool() async throws {
        try await withRunner([SHA256Handler(workers: Self.pool)]) { jobs in
            let job = try await Self.submit(jobs, "sha256", #"{"data":"hello"}"#)
            let done = try #require(try await jobs.job(id: job.id, finishedWithin: .seconds(5)))
            #expect(done.state == .succeeded)
            let result = JSONValue(json: try #require(done.result))
            #expect(
                result?["sha256"]?.stringValue == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
            )
        }
    }

    @Test func aFailedAttemptIsRetried() async throws {
        try await withRunner([Flaky()]) { jobs in
            let job = try await Self.submit(jobs, "flaky", "null")
            let done = try #require(try await jobs.job(id: job.id, finishedWithin: .seconds(10)))
            #expect(done.state == .succeeded && done.attempts == 2)
        }
    }

    @Test func anAttemptPastItsTimeoutFails() async throws {
        try await withRunner([SleepHandler()]) { jobs in
            let job = try await jobs.submit(
                NewJob(
                    queue: "default",
                    type: "sleep",
                    input: Data(#"{"seconds":5}"#.utf8),
                    maxAttempts: 1,
                    timeoutSeconds: 0.2
                )
            ).job
            let done = try #require(try await jobs.job(id: job.id, finishedWithin: .seconds(5)))
            #expect(done.state == .dead)
            #expect(done.error?.contains("timeout") == true)
        }
    }

    @Test func anUnknownTypeFailsForGood() async throws {
        try await withRunner([SleepHandler()]) { jobs in
            let job = try await Self.submit(jobs, "nope", "null")
            let done = try #require(try await jobs.job(id: job.id, finishedWithin: .seconds(5)))
            #expect(done.state == .failed && done.attempts == 1)
        }
    }
}
