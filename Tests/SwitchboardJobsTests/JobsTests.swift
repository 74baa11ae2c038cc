import Foundation
import GRDB
import Logging
import SwitchboardBroker
import Testing

@testable import SwitchboardJobs
@testable import SwitchboardSQLite
@testable import SwitchboardStore

/// The job queue on a real SQLite store in a temporary directory.
@Suite struct JobsTests {
    struct Fixture {
        let store: SQLiteStore
        let broker: Broker
        let jobs: Jobs
        /// The time leases, backoffs and retention are measured by, moved by the tests.
        let clock = ManualWallClock()

        /// - Parameter realTime: measure by the system's clock instead of `clock` (for workers that retry).
        init(realTime: Bool = false, configure: (inout Jobs.Configuration) -> Void = { _ in }) throws {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("jobs-\(UUID().uuidString)")
            store = try SQLiteStore(directory: directory.path)
            broker = Broker(store: store)
            var configuration = Jobs.Configuration()
            configuration.baseBackoff = .milliseconds(20)
            configure(&configuration)
            jobs = Jobs(
                store: store,
                broker: broker,
                configuration: configuration,
                clock: realTime ? SystemWallClock() : clock,
                logger: Logger(label: "test")
            )
        }

        func submit(_ queue: String = "q", type: String = "t", maxAttempts: Int = 3) async throws -> Job {
            try await jobs.submit(NewJob(queue: queue, type: type, input: Data("{}".utf8), maxAttempts: maxAttempts))
                .job
        }

        /// The states announced on the job's topic, in order.
        func announcedStates(_ id: String) async throws -> [String] {
            let slice = try await broker.read(topic: Jobs.topic(of: id), after: 0, limit: 100)
            struct Event: Decodable {
                var state: String
            }
            return try slice.messages.map { try JSONDecoder().decode(Event.self, from: $0.body).state }
        }
    }

    @Test func aJobRunsThroughItsStatesAndEachIsAnnounced() async throws {
        let fixture = try Fixture()
        let job = try await fixture.submit()
        let claimed = try #require(try await fixture.jobs.claim(queue: "q"))
        #expect(claimed.id == job.id && claimed.state == .running && claimed.attempts == 1)
        let token = try #require(claimed.leaseToken)
        let done = try await fixture.jobs.complete(id: job.id, token: token, result: .string("ok")).job
        #expect(done.state == .succeeded && done.version == 3)
        #expect(try await fixture.announcedStates(job.id) == ["queued", "running", "succeeded"])
        // The lease is spent: a second completion is refused.
        await #expect(throws: JobStoreError.leaseLost) {
            try await fixture.jobs.complete(id: job.id, token: token, result: .null)
        }
    }

    @Test func anExpiredLeaseReturnsTheJobAndTheOldHolderCannotComplete() async throws {
        let fixture = try Fixture()
        let job = try await fixture.submit()
        let first = try #require(try await fixture.jobs.claim(queue: "q", lease: .seconds(30)))
        #expect(try await fixture.jobs.claim(queue: "q") == nil)
        fixture.clock.advance(by: .seconds(29))
        #expect(try await fixture.jobs.expireLeases() == 0)
        fixture.clock.advance(by: .seconds(1))
        #expect(try await fixture.jobs.expireLeases() == 1)
        let second = try #require(try await fixture.jobs.claim(queue: "q"))
        #expect(second.id == job.id && second.attempts == 2 && second.leaseToken != first.leaseToken)
        await #expect(throws: JobStoreError.leaseLost) {
            try await fixture.jobs.complete(id: job.id, token: first.leaseToken!, result: .null)
        }
        _ = try await fixture.jobs.complete(id: job.id, token: second.leaseToken!, result: .null)
        let states = try await fixture.announcedStates(job.id)
        #expect(states.filter { $0 == "succeeded" }.count == 1)
    }

    @Test func heartbeatsKeepTheLease() async throws {
        let fixture = try Fixture()
        _ = try await fixture.submit()
        let lease = Duration.seconds(30)
        let claimed = try #require(try await fixture.jobs.claim(queue: "q", lease: lease))
        // Four renewals 20 s apart outlive the first lease by far.
        for _ in 0..<4 {
            fixture.clock.advance(by: .seconds(20))
            _ = try await fixture.jobs.heartbeat(id: claimed.id, token: claimed.leaseToken!, lease: lease)
            #expect(try await fixture.jobs.expireLeases() == 0)
        }
    }

    @Test func failuresRetryWithBackoffThenGoDeadAndCanBeRequeued() async throws {
        let fixture = try Fixture()
        let job = try await fixture.submit(maxAttempts: 2)
        let first = try #require(try await fixture.jobs.claim(queue: "q"))
        let retried = try await fixture.jobs.fail(id: job.id, token: first.leaseToken!, error: "boom").job
        #expect(retried.state == .queued && retried.runAt > retried.updatedAt - 1 && retried.error == "boom")
        // Not due before its backoff.
        #expect(try await fixture.jobs.claim(queue: "q") == nil)
        fixture.clock.advance(by: .seconds(1))
        let second = try #require(try await fixture.jobs.claim(queue: "q"))
        let dead = try await fixture.jobs.fail(id: job.id, token: second.leaseToken!, error: "boom again").job
        #expect(dead.state == .dead && dead.attempts == 2)
        #expect(try await fixture.jobs.jobs(queue: "q", state: .dead, limit: 10).map(\.id) == [job.id])
        let requeued = try await fixture.jobs.requeue(id: job.id).job
        #expect(requeued.state == .queued && requeued.attempts == 0)
    }

    @Test func aFailureWithoutRetryIsFinal() async throws {
        let fixture = try Fixture()
        let job = try await fixture.submit()
        let claimed = try #require(try await fixture.jobs.claim(queue: "q"))
        let failed = try await fixture.jobs.fail(id: job.id, token: claimed.leaseToken!, error: "bad", retry: false).job
        #expect(failed.state == .failed)
        await #expect(throws: JobStoreError.wrongState(.failed)) { try await fixture.jobs.cancel(id: job.id) }
    }

    @Test func priorityAndScheduleDecideTheOrder() async throws {
        let fixture = try Fixture()
        let now = Date().millisecondsSince1970
        let later = try await fixture.jobs.submit(
            NewJob(queue: "q", type: "t", input: Data("1".utf8), priority: 9, runAt: now + 60_000)
        ).job
        let low = try await fixture.jobs.submit(NewJob(queue: "q", type: "t", input: Data("2".utf8), priority: 0)).job
        let high = try await fixture.jobs.submit(NewJob(queue: "q", type: "t", input: Data("3".utf8), priority: 5)).job
        #expect(try await fixture.jobs.claim(queue: "q")?.id == high.id)
        #expect(try await fixture.jobs.claim(queue: "q")?.id == low.id)
        #expect(try await fixture.jobs.claim(queue: "q") == nil)
        #expect(try await fixture.jobs.job(id: later.id)?.state == .queued)
    }

    @Test func uniqueJobsAreDeduplicatedWithinTheirWindow() async throws {
        let fixture = try Fixture()
        let new = NewJob(queue: "q", type: "t", input: Data("{}".utf8), uniqueKey: "report-7")
        let first = try await fixture.jobs.submit(new)
        let second = try await fixture.jobs.submit(new)
        #expect(first.event != nil && second.event == nil && second.job.id == first.job.id)
        let other = try await fixture.jobs.submit(
            NewJob(queue: "other", type: "t", input: Data("{}".utf8), uniqueKey: "report-7")
        )
        #expect(other.job.id != first.job.id)
    }

    @Test func aLongPollOnAJobReturnsAtItsNextChange() async throws {
        let fixture = try Fixture()
        let job = try await fixture.submit()
        async let changed = fixture.jobs.job(id: job.id, changedAfter: job.version, waitingUpTo: .seconds(5))
        try await Task.sleep(for: .milliseconds(100))
        _ = try await fixture.jobs.claim(queue: "q")
        #expect(try await changed?.state == .running)
        let unchanged = try await fixture.jobs.job(id: job.id, changedAfter: 2, waitingUpTo: .milliseconds(100))
        #expect(unchanged?.state == .running)
    }

    @Test func finishedJobsPastTheirRetentionAreDeletedWithTheirEvents() async throws {
        let fixture = try Fixture { $0.retention = .seconds(7 * 24 * 3600) }
        let done = try await fixture.submit()
        let live = try await fixture.submit()
        _ = try await fixture.jobs.cancel(id: done.id)
        #expect(try await fixture.jobs.deleteExpiredJobs() == 0)
        fixture.clock.advance(by: .seconds(7 * 24 * 3600 + 1))
        #expect(try await fixture.jobs.deleteExpiredJobs() == 1)
        #expect(try await fixture.jobs.job(id: done.id) == nil)
        #expect(try await fixture.announcedStates(done.id).isEmpty)
        #expect(try await fixture.jobs.job(id: live.id)?.state == .queued)
    }

    @Test func aClaimWaitsForASubmission() async throws {
        let fixture = try Fixture()
        async let claimed = fixture.jobs.claim(queue: "q", waitingUpTo: .seconds(5))
        try await Task.sleep(for: .milliseconds(100))
        let job = try await fixture.submit()
        #expect(try await claimed?.id == job.id)
    }

    @Test func aRowWithAnUnknownStateIsAnErrorNotAQueuedJob() async throws {
        let fixture = try Fixture()
        let job = try await fixture.submit()
        try await fixture.store.pool.write { db in
            try db.execute(sql: "UPDATE jobs SET state = 'exploded' WHERE id = ?", arguments: [job.id])
        }
        await #expect(throws: CorruptJobRow.self) { try await fixture.store.job(id: job.id) }
        await #expect(throws: CorruptJobRow.self) { try await fixture.store.jobs(queue: "q", state: nil, limit: 10) }
    }
}
