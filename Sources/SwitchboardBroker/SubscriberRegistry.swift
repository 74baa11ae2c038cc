import SwitchboardStore
import Synchronization

/// The live subscriber queues of every topic; the broker fans committed messages out through it.
final class SubscriberRegistry: Sendable {
    private let topics = Mutex<[String: [ObjectIdentifier: SubscriberQueue]]>([:])
    private let queueCapacity: Int

    init(queueCapacity: Int) {
        self.queueCapacity = queueCapacity
    }

    func register(topic: String) -> SubscriberQueue {
        let queue = SubscriberQueue(capacity: queueCapacity)
        topics.withLock { $0[topic, default: [:]][ObjectIdentifier(queue)] = queue }
        return queue
    }

    func unregister(_ queue: SubscriberQueue, from topic: String) {
        topics.withLock { all in
            all[topic]?[ObjectIdentifier(queue)] = nil
            if all[topic]?.isEmpty == true {
                all[topic] = nil
            }
        }
    }

    /// Hands committed messages, in offset order, to every queue of their topic.
    func fanOut(_ messages: [StoredMessage]) {
        for (topic, batch) in Dictionary(grouping: messages, by: \.topic) {
            let queues = topics.withLock { $0[topic].map { Array($0.values) } ?? [] }
            for queue in queues {
                queue.push(batch)
            }
        }
    }

    /// Ends every subscription (on shutdown).
    func closeAll() {
        for queue in topics.withLock({ $0.values.flatMap(\.values) }) {
            queue.close()
        }
    }
}
