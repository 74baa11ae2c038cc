import Synchronization

/// Wakes the workers waiting for work on a queue when a job becomes available there.
final class QueueSignals: Sendable {
    private let waiters = Mutex<[String: [Int: CheckedContinuation<Void, Never>]]>([:])
    private let nextID = Atomic<Int>(0)

    /// Wakes up to `count` of the workers waiting on `queue`: one per job that became due.
    func notify(_ queue: String, count: Int) {
        let woken = waiters.withLock { waiters in
            let chosen = Array((waiters[queue] ?? [:]).keys.prefix(count))
            return chosen.compactMap { waiters[queue]?.removeValue(forKey: $0) }
        }
        for continuation in woken {
            continuation.resume()
        }
    }

    /// Returns when `queue` is notified, `timeout` passes or the task is cancelled.
    func wait(_ queue: String, upTo timeout: Duration) async {
        let id = nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withTaskCancellationHandler {
                    await withCheckedContinuation { continuation in
                        let cancelled = self.waiters.withLock { waiters in
                            if Task.isCancelled { return true }
                            waiters[queue, default: [:]][id] = continuation
                            return false
                        }
                        if cancelled { continuation.resume() }
                    }
                } onCancel: {
                    self.waiters.withLock { $0[queue]?.removeValue(forKey: id) }?.resume()
                }
            }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
    }
}
