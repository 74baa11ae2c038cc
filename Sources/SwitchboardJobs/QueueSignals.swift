import Synchronization

/// Wakes the workers waiting for work on a queue when a job becomes available there.
final class QueueSignals: Sendable {
    private let waiters = Mutex<[String: [Int: CheckedContinuation<Void, Never>]]>([:])
    private let nextID = Atomic<Int>(0)

    /// Wakes every worker waiting on `queue`.
    func notify(_ queue: String) {
        let woken = waiters.withLock { $0.removeValue(forKey: queue) ?? [:] }
        for continuation in woken.values {
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
