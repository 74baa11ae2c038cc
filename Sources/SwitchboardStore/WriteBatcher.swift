import GRDB
import Synchronization

/// Group commit for small writes: while one transaction commits, new writes queue up, and the next
/// transaction takes them all, each in a savepoint of its own so that one failing write does not undo
/// the others. Callers hear back only after the transaction holding their write has committed.
final class WriteBatcher: Sendable {
    /// Runs one write inside the shared transaction; returns what to tell its caller once that commits.
    private typealias Write = @Sendable (Database) -> @Sendable () -> Void

    private struct Pending {
        var write: Write
        var fail: @Sendable (any Error) -> Void
    }

    private struct State {
        var pending: [Pending] = []
        var isWriting = false
    }

    private let pool: DatabasePool
    private let maxBatch: Int
    private let state = Mutex(State())

    init(pool: DatabasePool, maxBatch: Int = 512) {
        self.pool = pool
        self.maxBatch = maxBatch
    }

    /// Runs `body` in the next group transaction and returns its result once that has committed.
    func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let write: Write = { db in
                var outcome: Result<T, any Error> = .failure(CancellationError())
                do {
                    try db.inSavepoint {
                        outcome = .success(try body(db))
                        return .commit
                    }
                } catch {
                    outcome = .failure(error)
                }
                let settled = outcome
                return { continuation.resume(with: settled) }
            }
            enqueue(Pending(write: write, fail: { continuation.resume(throwing: $0) }))
        }
    }

    private func enqueue(_ pending: Pending) {
        let startWriting = state.withLock { state in
            state.pending.append(pending)
            defer { state.isWriting = true }
            return !state.isWriting
        }
        if startWriting {
            Task { await self.writePending() }
        }
    }

    private func writePending() async {
        while true {
            let batch: [Pending] = state.withLock { state in
                let batch = Array(state.pending.prefix(maxBatch))
                state.pending.removeFirst(batch.count)
                if batch.isEmpty {
                    state.isWriting = false
                }
                return batch
            }
            guard !batch.isEmpty else { return }
            do {
                let replies = try await pool.write { db in batch.map { $0.write(db) } }
                for reply in replies {
                    reply()
                }
            } catch {
                for pending in batch {
                    pending.fail(error)
                }
            }
        }
    }
}
