import GRDB
import SwitchboardStore

/// Group commit for small writes: writes queued while one transaction commits go together into the next,
/// each in a savepoint of its own so that one failing write does not undo the others. Callers hear back
/// only after the transaction holding their write has committed.
final class WriteBatcher: Sendable {
    /// Runs one write inside the shared transaction; returns what to tell its caller once that commits.
    private typealias Write = @Sendable (Database) -> @Sendable () -> Void

    private struct Pending {
        var write: Write
        var fail: @Sendable (any Error) -> Void
    }

    private let queue: BatchQueue<Pending>

    init(pool: DatabasePool, maxBatch: Int = 512) {
        queue = BatchQueue(maxBatch: maxBatch) { batch in
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
            queue.submit(Pending(write: write, fail: { continuation.resume(throwing: $0) }))
        }
    }
}
