import Foundation
import SwitchboardStore
import Testing

/// The records behind `Idempotency-Key`, on a real SQLite store.
@Suite struct IdempotencyStoreTests {
    let store: SQLiteStore
    let key = IdempotencyKey(principal: "anonymous", key: "k1")
    let response = RecordedResponse(
        status: 201,
        headers: [["Content-Type", "application/json"]],
        body: Data("{}".utf8)
    )

    init() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("idem-\(UUID().uuidString)")
        store = try SQLiteStore(directory: directory.path)
    }

    private func claim(_ fingerprint: String = "f", owner: String = "me", now: Int64 = 1000) async throws
        -> IdempotencyClaim
    {
        try await store.claim(key, fingerprint: fingerprint, owner: owner, now: now, expiresAt: now + 10_000)
    }

    @Test func theFirstRunsRetriesReplayAndOthersAreRefused() async throws {
        #expect(try await claim() == .started)
        #expect(try await claim() == .inProgress)
        #expect(try await claim("other") == .mismatch)
        try await store.record(response, for: key, expiresAt: 11_000)
        #expect(try await claim() == .replay(response))
        #expect(try await claim("other") == .mismatch)
    }

    @Test func aClaimLeftByADeadProcessIsTakenOver() async throws {
        #expect(try await claim(owner: "crashed-run") == .started)
        #expect(try await claim(owner: "this-run") == .started)
        #expect(try await claim(owner: "this-run") == .inProgress)
    }

    @Test func aReleasedClaimRunsAgain() async throws {
        #expect(try await claim() == .started)
        try await store.release(key)
        #expect(try await claim() == .started)
    }

    @Test func expiredKeysAreForgottenAndPurged() async throws {
        #expect(try await claim() == .started)
        try await store.record(response, for: key, expiresAt: 2000)
        #expect(try await claim("other", now: 2500) == .started)
        #expect(try await store.purgeIdempotencyKeys(now: 20_000) == 1)
    }

    @Test func aReceiptIsCommittedWithTheJobItAnswersFor() async throws {
        #expect(try await claim() == .started)
        let receipt = IdempotencyReceipt<JobChange>(key: key, expiresAt: 10_000) { change in
            RecordedResponse(status: 202, headers: [], body: Data(change.job.id.utf8))
        }
        let change = try await store.submit(
            NewJob(queue: "q", type: "t", input: Data("{}".utf8)),
            now: 1000,
            event: { NewMessage(topic: "jobs.\($0.id)", body: Data()) },
            receipt: receipt
        )
        #expect(try await claim() == .inProgress)
        let response = RecordedResponse(status: 202, headers: [], body: Data(change.job.id.utf8))
        #expect(try await claim(owner: "after-a-crash") == .replay(response))
    }

    @Test func aReceiptIsCommittedWithTheMessageItAnswersFor() async throws {
        #expect(try await claim() == .started)
        let receipt = IdempotencyReceipt<StoredMessage>(key: key, expiresAt: 10_000) { message in
            RecordedResponse(status: 201, headers: [], body: Data("\(message.offset)".utf8))
        }
        _ = try await store.append([NewMessage(topic: "t", body: Data("x".utf8), receipt: receipt)])
        #expect(
            try await claim(owner: "after-a-crash")
                == .replay(RecordedResponse(status: 201, headers: [], body: Data("1".utf8)))
        )
    }
}
