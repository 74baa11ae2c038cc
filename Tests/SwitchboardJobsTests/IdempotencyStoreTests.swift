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
}
