import DequeModule
import NIOCore
import SwitchboardStore
import Synchronization

/// Encodings of recently delivered messages, shared by every subscriber: a message fanned out to a
/// thousand sockets is encoded once per format, not a thousand times. Bounded, oldest out first.
final class EncodingCache: Sendable {
    enum Format: Sendable, Hashable {
        case webSocket
        case serverSentEvent
    }

    private struct Key: Hashable {
        var topic: String
        var offset: Int64
        var format: Format
    }

    private struct State {
        var entries: [Key: ByteBuffer] = [:]
        var order = Deque<Key>()
    }

    private let capacity: Int
    private let state = Mutex(State())

    init(capacity: Int = 4096) {
        self.capacity = capacity
    }

    /// The encoding of `message` in `format`, made by `encode` the first time it is asked for.
    func encoded(
        _ message: StoredMessage,
        as format: Format,
        by encode: (StoredMessage) -> ByteBuffer
    ) -> ByteBuffer {
        let key = Key(topic: message.topic, offset: message.offset, format: format)
        if let cached = state.withLock({ $0.entries[key] }) {
            return cached
        }
        let buffer = encode(message)
        state.withLock { state in
            guard state.entries.updateValue(buffer, forKey: key) == nil else { return }
            state.order.append(key)
            if state.order.count > capacity, let oldest = state.order.popFirst() {
                state.entries[oldest] = nil
            }
        }
        return buffer
    }
}
