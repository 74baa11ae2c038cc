import SwitchboardStore

/// One subscriber's ordered view of a topic: first what the store holds after its starting offset, then
/// the live messages, with no gap and no duplicate. A subscriber that falls behind the live stream is
/// moved back to reading the store until it has caught up.
public final class Subscription {
    /// What a subscriber receives next.
    public enum Event: Sendable, Equatable {
        /// Messages in offset order.
        case messages([StoredMessage])
        /// Retention removed messages this subscriber had not read; it continues from `earliestOffset`.
        case trimmed(earliestOffset: Int64)
    }

    public let topic: String
    /// The offset of the last message delivered (or the starting point).
    public private(set) var position: Int64
    private let store: any TopicStore
    private let queue: SubscriberQueue
    private let unregister: () -> Void
    private let batchSize: Int
    private var readingStore = true

    init(
        topic: String,
        after position: Int64,
        store: any TopicStore,
        queue: SubscriberQueue,
        batchSize: Int,
        unregister: @escaping () -> Void
    ) {
        self.topic = topic
        self.position = position
        self.store = store
        self.queue = queue
        self.batchSize = batchSize
        self.unregister = unregister
    }

    deinit {
        unregister()
    }

    /// The next messages, waiting for them if there are none yet (and for the store, while it is
    /// unavailable); `nil` once the task is cancelled or the broker closes.
    public func next() async throws -> Event? {
        while true {
            if readingStore {
                let slice: TopicSlice
                do {
                    slice = try await store.read(topic: topic, after: position, limit: batchSize)
                } catch is StoreUnavailable {
                    // The store is down for now: the subscription outlives the outage and reads again,
                    // unless it is being ended (the task cancelled, or the broker closing).
                    try? await Task.sleep(for: .milliseconds(500))
                    if Task.isCancelled || queue.isClosed { return nil }
                    continue
                }
                if slice.earliestOffset > position + 1 && slice.latestOffset > position {
                    position = slice.earliestOffset - 1
                    return .trimmed(earliestOffset: slice.earliestOffset)
                }
                if let last = slice.messages.last {
                    position = last.offset
                    return .messages(slice.messages)
                }
                readingStore = false
            }
            switch await queue.next() {
            case .closed:
                return nil
            case .overflowed:
                readingStore = true
            case .messages(let live):
                let fresh = live.drop { $0.offset <= position }
                guard let first = fresh.first else { continue }
                guard first.offset == position + 1 else {
                    readingStore = true  // A gap: those messages are in the store.
                    continue
                }
                position = fresh.last!.offset
                return .messages(Array(fresh))
            }
        }
    }
}
