import Foundation
import SwitchboardStore
import Testing

/// The job queue's store, on every backend.
@Suite struct JobStoreTests {
    private let event: JobEventRenderer = { job in
        NewMessage(topic: "jobs.\(job.id)", contentType: "application/json", body: Data(job.state.rawValue.utf8))
    }

    private func submit(
        _ store: any NodeStore,
        queue: String = "q",
        now: Int64 = 1000,
        _ change: (inout NewJob) -> Void = { _ in }
    )
        async throws -> Job
    {
        var new = NewJob(queue: queue, type: "t", input: Data("{}".utf8))
        change(&new)
        return try await store.submit(new, now: now, event: event, receipt: nil).job
    }

    private func states(_ store: any NodeStore, _ id: String) async throws -> [String] {
        try await store.read(topic: "jobs.\(id)", after: 0, limit: 100).messages.map {
            String(decoding: $0.body, as: UTF8.self)
        }
    }

    @Test(arguments: Backend.allCases)
    func aJobRunsThroughItsStatesAndEachIsAnnouncedInItsTransaction(_ backend: Backend) async throws {
        let store = try await backend.open()
        let job = try await submit(store)
        #expect(try await store.job(id: job.id) == job)
        let claimed = try #require(
            try await store.claim(queue: "q", limit: 5, leaseMilliseconds: 100, now: 1000, event: event).first
        )
        #expect(claimed.job.state == .running && claimed.job.attempts == 1 && claimed.event?.offset == 2)
        let token = try #require(claimed.job.leaseToken)
        _ = try await store.heartbeat(id: job.id, token: token, leaseMilliseconds: 500, now: 1050)
        let done = try await store.complete(id: job.id, token: token, result: Data("1".utf8), now: 1200, event: event)
        #expect(done.job.state == .succeeded && done.job.version == 3 && done.job.leaseToken == nil)
        #expect(try await store.job(id: job.id)?.result == Data("1".utf8))
        #expect(try await states(store, job.id) == ["queued", "running", "succeeded"])
        await #expect(throws: JobStoreError.leaseLost) {
            try await store.complete(id: job.id, token: token, result: Data(), now: 1300, event: event)
        }
        await #expect(throws: JobStoreError.notFound) { try await store.cancel(id: "nope", now: 1, event: event) }
    }

    /// Workers on several nodes claiming at once: each job is leased to exactly one of them.
    @Test(arguments: Backend.allCases)
    func concurrentClaimsFromSeveralNodesLeaseEachJobOnce(_ backend: Backend) async throws {
        let nodes = try await backend.openCluster(nodes: 3)
        for _ in 0..<60 { _ = try await submit(nodes[0]) }
        let claimed = try await withThrowingTaskGroup(of: [String].self) { group in
            for worker in 0..<12 {
                let node = nodes[worker % nodes.count]
                group.addTask {
                    var mine: [String] = []
                    while true {
                        let batch = try await node.claim(
                            queue: "q",
                            limit: 2,
                            leaseMilliseconds: 60_000,
                            now: 2000,
                            event: self.event
                        )
                        if batch.isEmpty { return mine }
                        mine += batch.map(\.job.id)
                    }
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(claimed.count == 60 && Set(claimed).count == 60)
    }

    @Test(arguments: Backend.allCases)
    func expiredLeasesRetryThenGoDeadAndCanBeRequeued(_ backend: Backend) async throws {
        let store = try await backend.open()
        let job = try await submit(store) { $0.maxAttempts = 2 }
        _ = try await store.claim(queue: "q", limit: 1, leaseMilliseconds: 100, now: 1000, event: event)
        #expect(try await store.expireLeases(now: 1050, event: event).isEmpty)
        let expired = try await store.expireLeases(now: 1100, event: event)
        #expect(expired.map(\.job.state) == [.queued] && expired.first?.job.error?.contains("lease") == true)
        let second = try #require(
            try await store.claim(queue: "q", limit: 1, leaseMilliseconds: 100, now: 1200, event: event).first
        )
        let dead = try await store.fail(
            id: job.id,
            token: second.job.leaseToken!,
            error: "boom",
            retry: { _ in 10 },
            now: 1250,
            event: event
        )
        #expect(dead.job.state == .dead && dead.job.attempts == 2 && dead.job.error == "boom")
        #expect(try await store.jobs(queue: "q", state: .dead, limit: 10).map(\.id) == [job.id])
        #expect(try await store.jobs(queue: nil, state: nil, limit: 10).count == 1)
        #expect(try await store.queueCounts() == ["q": [.dead: 1]])
        let requeued = try await store.requeue(id: job.id, now: 1300, event: event)
        #expect(requeued.job.state == .queued && requeued.job.attempts == 0)
        #expect(try await store.nextDue(queue: "q") == 1300)
        _ = try await store.cancel(id: job.id, now: 1400, event: event)
        await #expect(throws: JobStoreError.wrongState(.cancelled)) {
            try await store.cancel(id: job.id, now: 1500, event: event)
        }
        #expect(try await store.nextDue(queue: "q") == nil)
    }

    @Test(arguments: Backend.allCases)
    func aRetryWaitsForItsBackoffAndPriorityDecidesTheOrder(_ backend: Backend) async throws {
        let store = try await backend.open()
        let low = try await submit(store)
        let high = try await submit(store) { $0.priority = 5 }
        let later = try await submit(store) {
            $0.priority = 9; $0.runAt = 5000
        }
        let first = try await store.claim(queue: "q", limit: 1, leaseMilliseconds: 1000, now: 1000, event: event)
        #expect(first.map(\.job.id) == [high.id])
        let retried = try await store.fail(
            id: high.id,
            token: first[0].job.leaseToken!,
            error: "e",
            retry: { _ in 500 },
            now: 1000,
            event: event
        )
        #expect(retried.job.state == .queued && retried.job.runAt == 1500)
        #expect(
            try await store.claim(queue: "q", limit: 5, leaseMilliseconds: 1000, now: 1100, event: event).map(\.job.id)
                == [low.id]
        )
        #expect(
            try await store.claim(queue: "q", limit: 5, leaseMilliseconds: 1000, now: 1600, event: event).map(\.job.id)
                == [high.id]
        )
        #expect(try await store.job(id: later.id)?.state == .queued)
    }

    @Test(arguments: Backend.allCases)
    func uniqueJobsAreDeduplicatedWithinTheirWindow(_ backend: Backend) async throws {
        let nodes = try await backend.openCluster(nodes: 2)
        let changes = try await withThrowingTaskGroup(of: JobChange.self) { group in
            for index in 0..<6 {
                group.addTask {
                    try await nodes[index % 2].submit(
                        NewJob(queue: "q", type: "t", input: Data("{}".utf8), uniqueKey: "report-7"),
                        now: 1000,
                        event: self.event,
                        receipt: nil
                    )
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(Set(changes.map(\.job.id)).count == 1 && changes.filter { $0.event != nil }.count == 1)
        let elsewhere = try await submit(nodes[0], queue: "other") { $0.uniqueKey = "report-7" }
        #expect(elsewhere.id != changes[0].job.id)
        let afterWindow = try await submit(nodes[0], now: 1000 + 3_601_000) { $0.uniqueKey = "report-7" }
        #expect(afterWindow.id != changes[0].job.id)
    }

    @Test(arguments: Backend.allCases)
    func finishedJobsAreDeletedWithTheirEvents(_ backend: Backend) async throws {
        let store = try await backend.open()
        let done = try await submit(store)
        let live = try await submit(store)
        _ = try await store.cancel(id: done.id, now: 2000, event: event)
        #expect(try await store.deleteFinishedJobs(before: 2000, limit: 10) == 0)
        #expect(try await store.deleteFinishedJobs(before: 3000, limit: 10) == 1)
        #expect(try await store.job(id: done.id) == nil)
        #expect(try await states(store, done.id).isEmpty)
        #expect(try await store.job(id: live.id)?.state == .queued)
    }

    @Test(arguments: Backend.allCases)
    func aRowWithAnUnknownStateIsAnErrorNotAQueuedJob(_ backend: Backend) async throws {
        let store = try await backend.open()
        let job = try await submit(store)
        try await backend.execute("UPDATE jobs SET state = 'exploded' WHERE id = '\(job.id)'", on: store)
        await #expect(throws: CorruptJobRow.self) { try await store.job(id: job.id) }
        await #expect(throws: CorruptJobRow.self) { try await store.jobs(queue: "q", state: nil, limit: 10) }
    }
}
