import SwitchboardStore
import Synchronization

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

    private struct State {
        var pending: [Pending] = []
        var isCommitting = false
    }

    private let store: any TopicStore
    private let maxBatch: Int
    /// Called after each commit, in commit order, before the publishers hear back.
    private let committed: @Sendable ([StoredMessage]) -> Void
    private let state = Mutex(State())

    init(store: any TopicStore, maxBatch: Int = 1024, committed: @escaping @Sendable ([StoredMessage]) -> Void) {
        self.store = store
        self.maxBatch = maxBatch
        self.committed = committed
    }

    /// Queues `message`; `completion` runs once its transaction has committed (or failed).
    func append(_ message: NewMessage, completion: @escaping Completion) {
        let startCommitting = state.withLock { state in
            state.pending.append(Pending(message: message, completion: completion))
            defer { state.isCommitting = true }
            return !state.isCommitting
        }
        if startCommitting {
            Task { await self.commitPending() }
        }
    }

    /// Appends `message` and returns it stored, once its transaction has committed.
    func append(_ message: NewMessage) async throws -> StoredMessage {
        try await withCheckedThrowingContinuation { continuation in
            append(message) { continuation.resume(with: $0) }
        }
    }

    private func commitPending() async {
        while true {
            let batch: [Pending] = state.withLock { state in
                let batch = Array(state.pending.prefix(maxBatch))
                state.pending.removeFirst(batch.count)
                if batch.isEmpty {
                    state.isCommitting = false
                }
                return batch
            }
            guard !batch.isEmpty else { return }
            do {
                let stored = try await store.append(batch.map(\.message))
                committed(stored)
                for (entry, message) in zip(batch, stored) {
                    entry.completion(.success(message))
                }
            } catch {
                for entry in batch {
                    entry.completion(.failure(error))
                }
            }
        }
    }
}
