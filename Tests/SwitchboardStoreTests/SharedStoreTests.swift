import Foundation
import SwitchboardPostgres
import SwitchboardStore
import Testing

/// What only a store shared by several nodes does: announce commits to the other nodes, and tell a
/// live node's claims from a dead one's.
@Suite struct SharedStoreTests {
    private func nodes() async throws -> [PostgresStore] {
        try await Backend.postgres.openCluster(nodes: 2).map { $0 as! PostgresStore }
    }

    @Test func anotherNodesAppendsAndDueJobsAreAnnouncedButNotOnesOwn() async throws {
        let nodes = try await nodes()
        let listening = Task { try await nodes[1].run() }
        defer { listening.cancel() }
        var changes = nodes[1].remoteChanges.makeAsyncIterator()
        try await Task.sleep(for: .milliseconds(300))  // the LISTEN is in place
        _ = try await nodes[1].append([NewMessage(topic: "own", body: Data())])
        _ = try await nodes[0].append([NewMessage(topic: "t", body: Data()), NewMessage(topic: "t", body: Data())])
        #expect(await changes.next() == .appended(topic: "t", through: 2))
        let event: JobEventRenderer = { NewMessage(topic: "jobs.\($0.id)", body: Data()) }
        let job = NewJob(queue: "q", type: "t", input: Data("{}".utf8))
        _ = try await nodes[0].submit(job, now: Date().millisecondsSince1970, event: event, receipt: nil)
        var seen: [RemoteChange] = []
        while seen.count < 2, let change = await changes.next() { seen.append(change) }
        #expect(seen.contains(.queued(queue: "q", count: 1)))
        #expect(seen.contains { if case .appended(let topic, 1) = $0 { topic.hasPrefix("jobs.") } else { false } })
    }

    @Test func aClaimHeldByALiveNodeIsInProgressAndTakenOverOnceItDies() async throws {
        let nodes = try await nodes()
        let key = IdempotencyKey(principal: "p", key: "k")
        let now = Date().millisecondsSince1970
        func claim(_ node: PostgresStore) async throws -> IdempotencyClaim {
            try await node.claim(key, fingerprint: "f", owner: node.processOwner, now: now, expiresAt: now + 60_000)
        }
        #expect(try await claim(nodes[0]) == .started)
        #expect(try await claim(nodes[1]) == .inProgress)
        await nodes[0].close()  // leaves the cluster, as a node that stopped heartbeating would be seen
        #expect(try await claim(nodes[1]) == .started)
    }

    @Test func nodesStartingTogetherMigrateTheSchemaOnce() async throws {
        let url = try await TestDatabase.create()
        let stores = try await withThrowingTaskGroup(of: PostgresStore.self) { group in
            for _ in 0..<4 {
                group.addTask { try await PostgresStore(url: url, maxConnections: 2, logger: TestDatabase.logger) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(stores.count == 4)
        _ = try await stores[0].append([NewMessage(topic: "t", body: Data())])
        #expect(try await stores[3].read(topic: "t", after: 0, limit: 1).latestOffset == 1)
    }

    /// A node may die between a commit and its announcement: when its heartbeat stops, the others send
    /// their subscribers back to the store.
    @Test func aNodeThatGoesSilentMakesTheOthersRereadTheStore() async throws {
        let nodes = try await nodes()
        let listening = Task { try await nodes[1].run() }
        defer { listening.cancel() }
        var changes = nodes[1].remoteChanges.makeAsyncIterator()
        try await Task.sleep(for: .milliseconds(2500))  // one heartbeat has seen node 0
        await nodes[0].close()
        let next = Task { await changes.next() }
        let timeout = Task {
            try await Task.sleep(for: .seconds(6))
            next.cancel()
        }
        defer { timeout.cancel() }
        #expect(await next.value == .missed)
    }
}
