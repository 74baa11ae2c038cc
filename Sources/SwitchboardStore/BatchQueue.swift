import Synchronization

/// Collects items handed in concurrently and processes them in batches, one batch at a time: while a
/// batch is being processed new items queue up, and the next batch takes them all (up to `maxBatch`).
/// This is group commit's shape: under load one task runs batch after batch with no hand-off per item.
public final class BatchQueue<Item: Sendable>: Sendable {
    private struct State {
        var pending: [Item] = []
        var isProcessing = false
    }

    private let maxBatch: Int
    private let process: @Sendable ([Item]) async -> Void
    private let state = Mutex(State())

    public init(maxBatch: Int, process: @escaping @Sendable ([Item]) async -> Void) {
        self.maxBatch = maxBatch
        self.process = process
    }

    /// A queue of writes committed together: `commit` writes a batch and answers its items. When a batch
    /// of several fails for a reason of its own (not a `StoreUnavailable` outage), each item is committed
    /// alone, so that one bad item fails only its own request; the items of a failed commit get `fail`.
    public convenience init(
        maxBatch: Int,
        commit: @escaping @Sendable ([Item]) async throws -> Void,
        fail: @escaping @Sendable (Item, any Error) -> Void
    ) {
        self.init(maxBatch: maxBatch) { batch in await Self.commit(batch, commit, fail: fail) }
    }

    private static func commit(
        _ batch: [Item],
        _ commit: @Sendable ([Item]) async throws -> Void,
        fail: @Sendable (Item, any Error) -> Void
    ) async {
        do {
            try await commit(batch)
        } catch  where batch.count > 1 && !(error is StoreUnavailable) {
            for item in batch { await Self.commit([item], commit, fail: fail) }
        } catch {
            for item in batch { fail(item, error) }
        }
    }

    /// Queues `item`; it is processed with the next batch.
    public func submit(_ item: Item) {
        let start = state.withLock { state in
            state.pending.append(item)
            defer { state.isProcessing = true }
            return !state.isProcessing
        }
        if start {
            Task { await self.drain() }
        }
    }

    private func drain() async {
        while true {
            let batch: [Item] = state.withLock { state in
                let batch = Array(state.pending.prefix(maxBatch))
                state.pending.removeFirst(batch.count)
                if batch.isEmpty {
                    state.isProcessing = false
                }
                return batch
            }
            guard !batch.isEmpty else { return }
            await process(batch)
        }
    }
}
