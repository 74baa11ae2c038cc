import SwitchboardStore

/// Turns concurrent publishes into few transactions: while one batch is being committed, new messages
/// queue up, and the next transaction takes them all. Durability then costs one commit per batch, not
/// one per message. Batches are committed one at a time, so offsets are handed out in commit order.
///
/// Publishers hand in a completion instead of awaiting, so an event loop can publish without a task of
/// its own; under load one committing task runs back to back with no hand-off per message.
final class GroupCommitter: Sendable {
    typealias Completion = @Sendable (Result<StoredMessage, any Error>) -> Void

    private struct Pending {
        var message: NewMessage
        var completion: Completion
    }

    private let queue: BatchQueue<Pending>

    /// - Parameter committed: called after each commit, in commit order, before the publishers hear back.
    init(store: any TopicStore, maxBatch: Int = 1024, committed: @escaping @Sendable ([StoredMessage]) -> Void) {
        // A batch the database refuses is appended message by message: one bad message fails only its
        // publisher.
        queue = BatchQueue(maxBatch: maxBatch) { batch in
            let stored = try await store.append(batch.map(\.message))
            committed(stored)
            for (entry, message) in zip(batch, stored) {
                entry.completion(.success(message))
            }
        } fail: { entry, error in
            entry.completion(.failure(error))
        }
    }

    /// Queues `message`; `completion` runs once its transaction has committed (or failed).
    func append(_ message: NewMessage, completion: @escaping Completion) {
        queue.submit(Pending(message: message, completion: completion))
    }

    /// Appends `message` and returns it stored, once its transaction has committed.
    func append(_ message: NewMessage) async throws -> StoredMessage {
        try await withCheckedThrowingContinuation { continuation in
            append(message) { continuation.resume(with: $0) }
        }
    }
}
