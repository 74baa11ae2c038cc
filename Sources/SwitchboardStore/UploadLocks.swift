import Synchronization

/// The uploads this process is writing: at most one request writes to an upload at a time.
package final class UploadLocks: Sendable {
    private let held = Mutex<Set<String>>([])

    package init() {}

    /// Takes the lock of `id`; `false` when it is already held.
    package func lock(_ id: String) -> Bool {
        held.withLock { $0.insert(id).inserted }
    }

    package func unlock(_ id: String) {
        _ = held.withLock { $0.remove(id) }
    }
}
