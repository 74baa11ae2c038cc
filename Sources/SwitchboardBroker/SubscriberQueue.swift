import DequeModule
import SwitchboardStore
import Synchronization

/// The bounded buffer between the broker's fan-out and one subscriber. When the subscriber falls
/// behind by more than `capacity` messages the buffer is dropped and marked overflowed: the subscriber
/// then catches up from the store, so memory stays bounded and nothing is lost.
final class SubscriberQueue: Sendable {
    enum Event {
        case messages([StoredMessage])
        /// Messages were dropped from the buffer; read them from the store.
        case overflowed
        /// The broker is closing.
        case closed
    }

    private struct State {
        var buffer = Deque<StoredMessage>()
        var overflowed = false
        var closed = false
        var waiter: CheckedContinuation<Event, Never>?
    }

    let capacity: Int
    private let state = Mutex(State())

    init(capacity: Int) {
        self.capacity = capacity
    }

    /// Adds committed messages of the subscribed topic; never blocks.
    func push(_ messages: some Collection<StoredMessage>) {
        let resume: (CheckedContinuation<Event, Never>, Event)? = state.withLock { state in
            guard !state.closed, !state.overflowed else { return nil }
            if let waiter = state.waiter {
                state.waiter = nil
                return (waiter, .messages(Array(messages)))
            }
            if state.buffer.count + messages.count > capacity {
                state.buffer.removeAll()
                state.overflowed = true
            } else {
                state.buffer.append(contentsOf: messages)
            }
            return nil
        }
        resume.map { $0.0.resume(returning: $0.1) }
    }

    /// Sends the subscriber back to the store: messages it has not seen were committed elsewhere (by
    /// another node sharing the store). Buffered messages are dropped; the store has them too.
    func readStore() {
        let waiter: CheckedContinuation<Event, Never>? = state.withLock { state in
            guard !state.closed else { return nil }
            state.buffer.removeAll()
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.overflowed = true
            return nil
        }
        waiter?.resume(returning: .overflowed)
    }

    /// Whether the broker closed it (or its task was cancelled).
    var isClosed: Bool {
        state.withLock { $0.closed }
    }

    func close() {
        let waiter = state.withLock { state in
            state.closed = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: .closed)
    }

    /// Everything buffered, or waits for the next push. Returns `.closed` when the task is cancelled.
    func next() async -> Event {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let ready: Event? = state.withLock { state in
                    if state.closed || Task.isCancelled { return .closed }
                    if state.overflowed {
                        state.overflowed = false
                        return .overflowed
                    }
                    if !state.buffer.isEmpty {
                        defer { state.buffer.removeAll() }
                        return .messages(Array(state.buffer))
                    }
                    state.waiter = continuation
                    return nil
                }
                ready.map { continuation.resume(returning: $0) }
            }
        } onCancel: {
            close()
        }
    }
}
