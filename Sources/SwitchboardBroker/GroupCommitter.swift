import SwitchboardStore

/// Turns concurrent publishes into few transactions: while one batch is being committed, new messages
/// queue up, and the next transaction takes them all. Durability then costs one commit per batch, not
/// one per message. Batches are committed one at a time, so offsets are handed out in commit order.
actor GroupCommitter {
    private struct Pending {
        var message: NewMessage
        var continuation: CheckedContinuation<StoredMessage, any Error>
    }

    private let store: any TopicStore
    private let maxBatch: Int
    /// Called after each commit, in commit order, before the publishers hear back.
    private let committed: @Sendable ([StoredMessage]) -> Void
    private var pending: [Pending] = []
    private var isCommitting = false

    init(store: any TopicStore, maxBatch: Int = 1024, committed: @escaping @Sendable ([StoredMessage]) -> Void) {
        self.store = store
        self.maxBatch = maxBatch
        self.committed = committed
    }

    /// Appends `message` and returns it stored, once its transaction has committed.
    func append(_ message: NewMessage) async throws -> StoredMessage {
        try await withCheckedThrowingContinuation { continuation in
            pending.append(Pending(message: message, continuation: continuation))
            if !isCommitting {
                isCommitting = true
                Task { await self.commitPending() }
            }
        }
    }

    private func commitPending() async {
        while !pending.isEmpty {
            let batch = Array(pending.prefix(maxBatch))
            pending.removeFirst(batch.count)
            do {
                let stored = try await store.append(batch.map(\.message))
                committed(stored)
                for (entry, message) in zip(batch, stored) {
                    entry.continuation.resume(returning: message)
                }
            } catch {
                for entry in batch {
                    entry.continuation.resume(throwing: error)
                }
            }
        }
        isCommitting = false
    }
}
