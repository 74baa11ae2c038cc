import Foundation
import SwitchboardStore
import Testing

/// The records behind `Idempotency-Key`, on every backend.
@Suite struct IdempotencyStoreTests {
    let key = IdempotencyKey(principal: "anonymous", key: "k1")
    let response = RecordedResponse(
        status: 201,
        headers: [["Content-Type", "application/json"]],
        body: Data("{}".utf8)
    )

    private func claim(
        _ store: any NodeStore,
        _ fingerprint: String = "f",
        owner: String = "me",
        now: Int64 = 1000
    ) async throws -> IdempotencyClaim {
        try await store.claim(key, fingerprint: fingerprint, owner: owner, now: now, expiresAt: now + 10_000)
    }

    @Test(arguments: Backend.allCases)
    func theFirstRunsRetriesReplayAndOthersAreRefused(_ backend: Backend) async throws {
        let store = try await backend.open()
        #expect(try await claim(store) == .started)
        #expect(try await claim(store) == .inProgress)
        #expect(try await claim(store, "other") == .mismatch)
        try await store.record(response, for: key, expiresAt: 11_000)
        #expect(try await claim(store) == .replay(response))
        #expect(try await claim(store, "other") == .mismatch)
    }

    @Test(arguments: Backend.allCases)
    func aClaimLeftByADeadProcessIsTakenOver(_ backend: Backend) async throws {
        let store = try await backend.open()
        #expect(try await claim(store, owner: "crashed-run") == .started)
        #expect(try await claim(store, owner: "this-run") == .started)
        #expect(try await claim(store, owner: "this-run") == .inProgress)
    }

    @Test(arguments: Backend.allCases)
    func aReleasedClaimRunsAgain(_ backend: Backend) async throws {
        let store = try await backend.open()
        #expect(try await claim(store) == .started)
        try await store.release(key)
        #expect(try await claim(store) == .started)
    }

    @Test(arguments: Backend.allCases)
    func expiredKeysAreForgottenAndPurged(_ backend: Backend) async throws {
        let store = try await backend.open()
        #expect(try await claim(store) == .started)
        try await store.record(response, for: key, expiresAt: 2000)
        #expect(try await claim(store, "other", now: 2500) == .started)
        #expect(try await store.purgeIdempotencyKeys(now: 20_000) == 1)
    }

    @Test(arguments: Backend.allCases)
    func aReceiptIsCommittedWithTheJobItAnswersFor(_ backend: Backend) async throws {
        let store = try await backend.open()
        #expect(try await claim(store) == .started)
        let receipt = IdempotencyReceipt<JobChange>(key: key, expiresAt: 10_000) { change in
            RecordedResponse(status: 202, headers: [], body: Data(change.job.id.utf8))
        }
        let change = try await store.submit(
            NewJob(queue: "q", type: "t", input: Data("{}".utf8)),
            now: 1000,
            event: { NewMessage(topic: "jobs.\($0.id)", body: Data()) },
            receipt: receipt
        )
        #expect(try await claim(store) == .inProgress)
        let response = RecordedResponse(status: 202, headers: [], body: Data(change.job.id.utf8))
        #expect(try await claim(store, owner: "after-a-crash") == .replay(response))
    }

    @Test(arguments: Backend.allCases)
    func aReceiptIsCommittedWithTheMessageItAnswersFor(_ backend: Backend) async throws {
        let store = try await backend.open()
        #expect(try await claim(store) == .started)
        let receipt = IdempotencyReceipt<StoredMessage>(key: key, expiresAt: 10_000) { message in
            RecordedResponse(status: 201, headers: [], body: Data("\(message.offset)".utf8))
        }
        _ = try await store.append([NewMessage(topic: "t", body: Data("x".utf8), receipt: receipt)])
        #expect(
            try await claim(store, owner: "after-a-crash")
                == .replay(RecordedResponse(status: 201, headers: [], body: Data("1".utf8)))
        )
    }
}
