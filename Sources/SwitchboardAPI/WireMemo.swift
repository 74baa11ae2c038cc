import NIOCore
import NIOPosix
import SwitchboardStore

/// The bytes of the messages a thread encoded last, in one wire format. A published message goes to every
/// subscriber of its topic; their deliveries run on a few threads, so with this memo each thread encodes
/// it once instead of once per subscriber. It belongs to its thread: no lock is taken.
final class WireMemo: @unchecked Sendable {  // Only ever used by the thread it belongs to.
    private struct Key: Hashable {
        var topic: String
        var offset: Int64
    }

    private static let capacity = 1024
    private var encoded: [Key: (id: String, bytes: ByteBuffer)] = [:]
    /// Keys in the order they were added, to forget the oldest.
    private var order: [Key] = []
    private var oldest = 0

    /// `message` in the format `encode` writes, from the memo when this thread encoded it recently.
    func bytes(of message: StoredMessage, encode: (StoredMessage) -> ByteBuffer) -> ByteBuffer {
        let key = Key(topic: message.topic, offset: message.offset)
        if let hit = encoded[key], hit.id == message.id {
            return hit.bytes
        }
        let bytes = encode(message)
        if order.count < Self.capacity {
            order.append(key)
        } else {
            encoded[order[oldest]] = nil
            order[oldest] = key
            oldest = (oldest + 1) % Self.capacity
        }
        encoded[key] = (message.id, bytes)
        return bytes
    }
}

/// One memo per thread and wire format.
struct ThreadWireMemo: Sendable {
    private let memos = ThreadSpecificVariable<WireMemo>()

    func bytes(of message: StoredMessage, encode: (StoredMessage) -> ByteBuffer) -> ByteBuffer {
        let memo = memos.currentValue ?? WireMemo()
        if memos.currentValue == nil {
            memos.currentValue = memo
        }
        return memo.bytes(of: message, encode: encode)
    }
}
